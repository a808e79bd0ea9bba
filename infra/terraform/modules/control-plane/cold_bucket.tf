# Optionally the cold-storage bucket itself: no public access, the spec's encryption, no
# versioning. Its lifecycle has one owner, enforce-cold-storage: the expiration follows the
# longest retention SigNoz has ever held (learned from SigNoz at every run), which no
# Terraform variable can know. Terraform leaves the lifecycle alone, so a `terraform plan`
# after a reconcile is clean. The settings Terraform does write are the ones the control
# plane writes for the same spec (encryption: `cold_bucket_kms_key_arn` must match the spec's
# `cold_storage.encryption`).
resource "aws_s3_bucket" "cold" {
  # checkov:skip=CKV_AWS_21:Versioning stays off: ClickHouse deletes parts itself and old versions would only cost money.
  # checkov:skip=CKV_AWS_144:Cross-region replication doubles the cost of re-creatable telemetry; not wanted.
  # checkov:skip=CKV_AWS_145:KMS is the spec's choice (cold_bucket_kms_key_arn); AES256 is the default.
  # checkov:skip=CKV2_AWS_61:enforce-cold-storage owns the lifecycle (tiers, expiration from SigNoz's retention, noncurrent versions, aborted uploads).
  # checkov:skip=CKV_AWS_300:enforce-cold-storage's lifecycle aborts incomplete multipart uploads.
  # checkov:skip=CKV_AWS_18:Access logs of ClickHouse's own S3 disk traffic would dwarf the data; CloudTrail records bucket changes.
  # checkov:skip=CKV2_AWS_62:Object events are not wanted; drift is caught from CloudTrail bucket-level calls.
  count = var.create_cold_bucket ? 1 : 0

  bucket = var.cold_bucket
}

resource "aws_s3_bucket_public_access_block" "cold" {
  count = var.create_cold_bucket ? 1 : 0

  bucket                  = aws_s3_bucket.cold[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "cold" {
  count = var.create_cold_bucket ? 1 : 0

  bucket = aws_s3_bucket.cold[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.cold_bucket_kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.cold_bucket_kms_key_arn
    }
    # As enforce-cold-storage writes it: S3 Bucket Keys with KMS, nothing with AES256.
    bucket_key_enabled = var.cold_bucket_kms_key_arn == null ? null : true
  }
}

resource "aws_s3_bucket_versioning" "cold" {
  count = var.create_cold_bucket ? 1 : 0

  bucket = aws_s3_bucket.cold[0].id
  versioning_configuration {
    status = "Disabled"
  }
}
