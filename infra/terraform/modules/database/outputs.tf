output "identifier" {
  description = "spec database.instance_identifier"
  value       = aws_db_instance.this.identifier
}

output "endpoint" {
  description = "Host of the instance."
  value       = aws_db_instance.this.address
}

output "master_secret_arn" {
  description = "The RDS-managed master secret (spec database.master_secret_arn)."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "security_group_id" {
  description = "Security group of the instance."
  value       = aws_security_group.this.id
}
