variable "name_prefix" {
  description = "Prefix of every resource name (the SAM stack name plays this role)."
  type        = string
  default     = "signoz-control"
}

variable "lambda_artifacts_dir" {
  description = "Directory holding <function>/bootstrap.zip, as written by `cargo lambda build --release --arm64 --output-format zip` (target/lambda)."
  type        = string
}

variable "config_bucket" {
  description = "Bucket holding the platform spec (EventBridge notifications must be enabled on it)."
  type        = string
}

variable "spec_key" {
  description = "Key of the platform spec in config_bucket."
  type        = string
  default     = "platform.yaml"
}

variable "state_bucket" {
  description = "Bucket where the control plane remembers what it applied (spec state.bucket)."
  type        = string
}

variable "state_prefix" {
  description = "Key prefix of that state (spec state.prefix)."
  type        = string
  default     = "state/"
}

variable "cold_bucket" {
  description = "ClickHouse cold-storage bucket (spec cold_storage.bucket)."
  type        = string
}

variable "app_secret_arn" {
  description = "ARN of the SigNoz application database secret, rotated by rotate-credentials."
  type        = string
}

variable "master_secret_arn" {
  description = "ARN of the RDS-managed master secret (rds!...), read only."
  type        = string
}

variable "ttl_api_key_secret_arn" {
  description = "ARN of the secret holding SigNoz's admin API key (spec retention.ttl_api.api_key_secret)."
  type        = string
}

variable "db_instance_identifier" {
  description = "RDS instance of the SigNoz metadata database."
  type        = string
  default     = "signoz-metadata"
}

variable "cluster_name" {
  description = "EKS cluster running SigNoz."
  type        = string
}

variable "platform_name" {
  description = "The platform's name (spec platform.name): the functions' Kubernetes groups are signoz-control:<platform_name>:<function>."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.platform_name))
    error_message = "platform_name must be a DNS label (lowercase letters, digits, dashes; at most 63), as spec platform.name."
  }
}

variable "vpc_id" {
  description = "VPC of the RDS instance and the EKS cluster's private endpoint."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR allowed to reach the interface endpoints on 443."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the functions and the interface endpoints."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the functions (egress to RDS 5432, the EKS endpoint and 443)."
  type        = list(string)
}

variable "route_table_ids" {
  description = "Route tables of the private subnets, for the S3 gateway endpoint (empty: none created)."
  type        = list(string)
  default     = []
}

variable "create_vpc_endpoints" {
  description = "Create the Secrets Manager, STS, EKS, RDS and S3 endpoints (false when the VPC already has them or a NAT)."
  type        = bool
  default     = true
}

variable "reconcile_schedule" {
  description = "How often cold storage and the cluster are reconciled."
  type        = string
  default     = "rate(1 hour)"
}

variable "signoz_rotation_days" {
  description = "Days between rotations of the app secret (spec database.rotation_days)."
  type        = number
  default     = 30
}

variable "alarm_name_prefix" {
  description = "Alarms whose state changes respond-to-alarms receives."
  type        = string
  default     = "signoz-"
}

variable "log_retention_days" {
  description = "Retention of the functions' log groups."
  type        = number
  default     = 365
}

variable "memory_size" {
  description = "Memory of each function in MB (the work is network-bound; Rust needs ~15 MB at rest)."
  type        = number
  default     = 256
}

variable "create_cold_bucket" {
  description = "Also create the cold-storage bucket with the lifecycle below (false when it exists already)."
  type        = bool
  default     = false
}

variable "signoz_cold_prefix" {
  description = "Prefix ClickHouse writes its S3 disk under (spec cold_storage.prefix)."
  type        = string
  default     = "clickhouse/"
}

variable "signoz_retention_standard_ia_days" {
  description = "Days after which cold objects move to Standard-IA (S3 refuses fewer than 30)."
  type        = number
  default     = 30

  validation {
    condition     = var.signoz_retention_standard_ia_days >= 30
    error_message = "S3 refuses a transition to STANDARD_IA before 30 days."
  }
}

variable "signoz_retention_glacier_days" {
  description = "Days after which cold objects move to Glacier Instant Retrieval (never GLACIER or DEEP_ARCHIVE: ClickHouse reads them directly)."
  type        = number
  default     = 90

  validation {
    condition     = var.signoz_retention_glacier_days >= 60
    error_message = "GLACIER_IR must come at least 30 days after STANDARD_IA (itself at least 30 days)."
  }
}

variable "signoz_retention_expire_days" {
  description = "Days after which cold objects expire; must exceed every signal's total minus hot days plus a margin."
  type        = number
  default     = 400
}
