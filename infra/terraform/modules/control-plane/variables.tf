variable "name_prefix" {
  description = "Prefix of every resource name (the SAM stack name plays this role)."
  type        = string
  default     = "signoz-control"

  # The longest name built from it: "<prefix>-enforce-cold-storage-BucketApiCall" (an
  # EventBridge rule, at most 64 characters); IAM role names allow 64 too.
  validation {
    condition     = can(regex("^[a-zA-Z0-9][a-zA-Z0-9-]*$", var.name_prefix)) && length(var.name_prefix) <= 20
    error_message = "name_prefix: letters, digits and hyphens, at most 20 characters (\"<prefix>-enforce-cold-storage-BucketApiCall\" must fit EventBridge's 64)."
  }
}

variable "architecture" {
  description = "Lambda architecture of the artifacts: x86_64 (what CI builds) or arm64 (cargo lambda build --release --arm64)."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "tags" {
  description = "Tags on every resource the module creates."
  type        = map(string)
  default     = {}
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary of the function roles (null: none)."
  type        = string
  default     = null

  validation {
    condition     = var.permissions_boundary_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:policy/.+$", var.permissions_boundary_arn))
    error_message = "permissions_boundary_arn must be an IAM policy ARN."
  }
}

variable "alarm_actions" {
  description = "Where the module's own alarms (function errors and throttles, dead letters) notify, e.g. an SNS topic ARN."
  type        = list(string)
  default     = []
}

variable "lambda_artifacts_dir" {
  description = "Directory holding <function>/bootstrap.zip, as written by `cargo lambda build --release --output-format zip` (target/lambda; add --arm64 for architecture arm64)."
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

variable "app_secret_name" {
  description = "Name of the SigNoz application database secret (spec database.app_secret_name). The module creates it empty; provisioning writes its first value; rotate-credentials rotates it."
  type        = string
  default     = "signoz/metadata-db/app"
}

variable "app_secret_kms_key_id" {
  description = "KMS key of the app secret (null: Secrets Manager's AWS-managed key)."
  type        = string
  default     = null
}

variable "master_secret_arn" {
  description = "ARN of the RDS-managed master secret (rds!...), read only (null with create_database)."
  type        = string
  default     = null

  validation {
    condition     = var.master_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.master_secret_arn))
    error_message = "master_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "ttl_api_key_secret_arn" {
  description = "ARN of the secret holding SigNoz's admin API key (spec retention.ttl_api.api_key_secret)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.ttl_api_key_secret_arn))
    error_message = "ttl_api_key_secret_arn must be a Secrets Manager secret ARN."
  }
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

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be an IPv4 CIDR block such as 10.20.0.0/16."
  }
}

variable "subnet_ids" {
  description = "Private subnets for the functions and the interface endpoints, at most one per Availability Zone."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2 && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "subnet_ids: at least two subnet IDs (subnet-...), in different Availability Zones."
  }
}

variable "database_security_group_id" {
  description = "Security group of the RDS instance: the module opens 5432 on it to the functions (null with create_database, which opens its own)."
  type        = string
  default     = null
}

variable "route_table_ids" {
  description = "Route tables of the private subnets, for the S3 gateway endpoint (empty: none created)."
  type        = list(string)
  default     = []
}

variable "create_vpc_endpoints" {
  description = "Create the Secrets Manager, STS, EKS and RDS interface endpoints and the S3 gateway endpoint (false when the VPC already has them or a NAT)."
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
  description = "Also create the cold-storage bucket (false when it exists already); its lifecycle is enforce-cold-storage's."
  type        = bool
  default     = false
}

variable "signoz_cold_prefix" {
  description = "Prefix ClickHouse writes its S3 disk under (spec cold_storage.prefix)."
  type        = string
  default     = "clickhouse/"
}

variable "cold_bucket_kms_key_arn" {
  description = "KMS key of the cold bucket's default encryption (spec cold_storage.encryption.kms_key_id with aws:kms); null for AES256."
  type        = string
  default     = null
}

variable "create_database" {
  description = "Also create the RDS PostgreSQL instance the seed has (modules/database); its managed master secret is then the one read."
  type        = bool
  default     = false
}

variable "node_security_group_ids" {
  description = "Security groups of the EKS nodes running SigNoz (database access, with create_database)."
  type        = list(string)
  default     = []
}

variable "database_allowed_cidrs" {
  description = "Further CIDRs allowed on 5432 (with create_database)."
  type        = list(string)
  default     = []
}

variable "database_multi_az" {
  description = "Multi-AZ standby for the created instance."
  type        = bool
  default     = true
}

variable "create_clickhouse_role" {
  description = "Also create the IRSA role ClickHouse's service account assumes for the cold bucket (modules/clickhouse-irsa)."
  type        = bool
  default     = false
}

variable "cluster_oidc_provider_arn" {
  description = "The cluster's IAM OIDC provider (with create_clickhouse_role)."
  type        = string
  default     = null
}

variable "clickhouse_service_account" {
  description = "ClickHouse's service account in cluster_namespace."
  type        = string
  default     = "signoz-clickhouse"
}
