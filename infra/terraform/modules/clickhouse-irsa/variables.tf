variable "role_name" {
  description = "Name of the role (spec cold_storage.clickhouse_role_arn ends with it)."
  type        = string
}

variable "oidc_provider_arn" {
  description = "ARN of the cluster's IAM OIDC provider."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/.+$", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must be an IAM OIDC provider ARN."
  }
}

variable "oidc_issuer_url" {
  description = "The cluster's OIDC issuer URL (aws_eks_cluster.identity[0].oidc[0].issuer)."
  type        = string
}

variable "namespace" {
  description = "Namespace of ClickHouse's service account (spec cluster.namespace)."
  type        = string
  default     = "platform"
}

variable "service_account" {
  description = "ClickHouse's service account."
  type        = string
  default     = "signoz-clickhouse"
}

variable "cold_bucket" {
  description = "The cold-storage bucket (spec cold_storage.bucket)."
  type        = string
}

variable "cold_prefix" {
  description = "ClickHouse's S3 disk prefix (spec cold_storage.prefix)."
  type        = string
  default     = "clickhouse/"
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary of the role."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags on the role."
  type        = map(string)
  default     = {}
}
