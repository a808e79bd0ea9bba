# Optionally the cold-storage bucket itself, as enforce-cold-storage will keep it:
# Standard -> Standard-IA -> Glacier IR -> expiration, AES256, no public access, no versioning.
resource "aws_s3_bucket" "cold" {
  # checkov:skip=CKV_AWS_21:Versioning stays off: ClickHouse deletes parts itself and old versions would only cost money.
  # checkov:skip=CKV_AWS_144:Cross-region replication doubles the cost of re-creatable telemetry; not wanted.
  # checkov:skip=CKV_AWS_145:The platform spec chooses AES256 here; KMS is a spec option, not a default.
  # checkov:skip=CKV_AWS_18:Access logs of ClickHouse's own S3 disk traffic would dwarf the data; CloudTrail records bucket changes.
  # checkov:skip=CKV2_AWS_62:Object events are not wanted; drift is caught from CloudTrail bucket-level calls.
  count = var.create_cold_bucket ? 1 : 0

  bucket = var.cold_bucket

  lifecycle {
    precondition {
      condition     = var.signoz_retention_glacier_days >= var.signoz_retention_standard_ia_days + 30
      error_message = "GLACIER_IR must come at least 30 days after STANDARD_IA."
    }
    precondition {
      condition     = var.signoz_retention_expire_days > var.signoz_retention_glacier_days
      error_message = "Expiration must come after the last transition."
    }
  }
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
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_versioning" "cold" {
  count = var.create_cold_bucket ? 1 : 0

  bucket = aws_s3_bucket.cold[0].id
  versioning_configuration {
    status = "Disabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "cold" {
  count = var.create_cold_bucket ? 1 : 0

  bucket = aws_s3_bucket.cold[0].id
  # ClickHouse writes many files under 128 KB: let them tier too.
  transition_default_minimum_object_size = "varies_by_storage_class"

  rule {
    id     = "signoz-cold-tiers"
    status = "Enabled"

    filter {
      prefix = var.signoz_cold_prefix
    }

    # Never GLACIER or DEEP_ARCHIVE: ClickHouse reads its S3 disk directly.
    transition {
      days          = var.signoz_retention_standard_ia_days
      storage_class = "STANDARD_IA"
    }

    transition {
      days          = var.signoz_retention_glacier_days
      storage_class = "GLACIER_IR"
    }

    expiration {
      days = var.signoz_retention_expire_days
    }

  }

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}
