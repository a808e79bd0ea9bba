output "role_arn" {
  description = "spec cold_storage.clickhouse_role_arn"
  value       = aws_iam_role.this.arn
}
