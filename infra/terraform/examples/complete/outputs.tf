output "function_arns" {
  description = "ARN of each control-plane function."
  value       = module.control_plane.function_arns
}

output "alarm_action_arn" {
  description = "ARN to put in an alarm's alarm_actions."
  value       = module.control_plane.alarm_action_arn
}

output "app_secret_arn" {
  description = "spec database.app_secret_name's secret."
  value       = module.control_plane.app_secret_arn
}

output "database" {
  description = "spec database.instance_identifier and master_secret_arn."
  value       = module.control_plane.database
}

output "clickhouse_role_arn" {
  description = "spec cold_storage.clickhouse_role_arn."
  value       = module.control_plane.clickhouse_role_arn
}
