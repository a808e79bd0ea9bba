output "function_arns" {
  description = "ARN of each function, by name."
  value       = { for name, f in aws_lambda_function.function : name => f.arn }
}

output "role_arns" {
  description = "Execution role of each function, by name."
  value       = { for name, r in aws_iam_role.function : name => r.arn }
}

output "alarm_action_arn" {
  description = "Put this ARN in an alarm's alarm_actions to call respond-to-alarms directly."
  value       = aws_lambda_function.function["respond-to-alarms"].arn
}

output "failed_invocations_queue_url" {
  description = "Where failed asynchronous invocations and undeliverable events land."
  value       = aws_sqs_queue.failed_invocations.url
}

output "cold_bucket_arn" {
  description = "The cold-storage bucket, when this module created it."
  value       = one(aws_s3_bucket.cold[*].arn)
}

output "app_secret_arn" {
  description = "The app secret (spec database.app_secret_name), created empty; provisioning writes its first value."
  value       = aws_secretsmanager_secret.app.arn
}

output "function_security_group_id" {
  description = "Security group of the functions (already allowed into the database and the EKS API)."
  value       = aws_security_group.functions.id
}

output "dead_letter_alarm_arn" {
  description = "Alarm on the dead-letter queue's depth."
  value       = aws_cloudwatch_metric_alarm.dead_letters.arn
}

output "database" {
  description = "The RDS instance when create_database (its identifier, endpoint and managed master secret feed spec database.*)."
  value       = var.create_database ? module.database[0] : null
}

output "clickhouse_role_arn" {
  description = "IRSA role of ClickHouse's service account (spec cold_storage.clickhouse_role_arn), when create_clickhouse_role."
  value       = one(module.clickhouse_role[*].role_arn)
}
