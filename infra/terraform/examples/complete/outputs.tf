output "function_arns" {
  description = "ARN of each control-plane function."
  value       = module.control_plane.function_arns
}

output "alarm_action_arn" {
  description = "ARN to put in an alarm's alarm_actions."
  value       = module.control_plane.alarm_action_arn
}
