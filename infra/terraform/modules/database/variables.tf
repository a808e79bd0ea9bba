variable "identifier" {
  description = "RDS instance identifier (spec database.instance_identifier)."
  type        = string
  default     = "signoz-metadata"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,62}$", var.identifier)) && !endswith(var.identifier, "-") && !strcontains(var.identifier, "--")
    error_message = "identifier: lowercase letters, digits and single hyphens, starting with a letter, at most 63 characters."
  }
}

variable "engine_version" {
  description = "PostgreSQL version (major.minor)."
  type        = string
  default     = "16.4"
}

variable "instance_class" {
  description = "Instance class."
  type        = string
  default     = "db.t4g.medium"
}

variable "allocated_storage" {
  description = "gp3 storage in GiB."
  type        = number
  default     = 20
}

variable "max_allocated_storage" {
  description = "Storage autoscaling ceiling in GiB."
  type        = number
  default     = 100
}

variable "multi_az" {
  description = "Standby in a second AZ (the spec's database.require_multi_az reports it)."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Refuse deletion of the instance."
  type        = bool
  default     = true
}

variable "backup_retention_days" {
  description = "Automated backup retention."
  type        = number
  default     = 7
}

variable "kms_key_id" {
  description = "KMS key for storage and Performance Insights (null: the AWS-managed RDS key)."
  type        = string
  default     = null
}

variable "vpc_id" {
  description = "VPC of the instance."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the DB subnet group (two AZs at least)."
  type        = list(string)
}

variable "node_security_group_ids" {
  description = "Security groups of the EKS nodes running SigNoz."
  type        = list(string)
}

variable "allowed_cidrs" {
  description = "Further CIDRs allowed on 5432 (e.g. a bastion subnet)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "allowed_cidrs must be CIDR blocks."
  }
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary of the monitoring role."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
