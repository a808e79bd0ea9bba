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
