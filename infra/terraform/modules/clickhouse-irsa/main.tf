# The IAM role ClickHouse's service account assumes (IRSA) for its S3 disk: trusted only by
# that service account through the cluster's OIDC provider, allowed only the cold prefix.

data "aws_partition" "current" {}

locals {
  issuer = replace(var.oidc_issuer_url, "https://", "")
  bucket = "arn:${data.aws_partition.current.partition}:s3:::${var.cold_bucket}"
}

data "aws_iam_policy_document" "trust" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.issuer}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${var.service_account}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "cold_prefix" {
  statement {
    sid       = "ClickHouseDiskObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = ["${local.bucket}/${var.cold_prefix}*"]
  }
  statement {
    sid       = "ListClickHouseDisk"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.cold_prefix}*"]
    }
  }
}

resource "aws_iam_role" "this" {
  name                 = var.role_name
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

resource "aws_iam_role_policy" "cold_prefix" {
  name   = "clickhouse-cold-prefix"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.cold_prefix.json
}
