# The four control-plane functions. What each one is allowed to do and what triggers it
# comes from functions.json, the same facts the SAM template states; the cross-check test
# (tests/integration/infra.rs) proves both match the code.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  manifest  = jsondecode(file("${path.module}/functions.json"))
  functions = local.manifest.functions

  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id

  # The symbolic resources of functions.json, resolved to ARNs.
  resource_arns = {
    spec_object         = ["arn:${local.partition}:s3:::${var.config_bucket}/${var.spec_key}"]
    state_bucket        = ["arn:${local.partition}:s3:::${var.state_bucket}"]
    state_objects       = ["arn:${local.partition}:s3:::${var.state_bucket}/${var.state_prefix}*"]
    alarm_state_objects = ["arn:${local.partition}:s3:::${var.state_bucket}/${var.state_prefix}alarms/*"]
    cold_bucket         = ["arn:${local.partition}:s3:::${var.cold_bucket}"]
    app_secret          = [var.app_secret_arn]
    master_secret       = [var.master_secret_arn]
    ttl_api_key_secret  = [var.ttl_api_key_secret_arn]
    db_instance         = ["arn:${local.partition}:rds:${local.region}:${local.account_id}:db:${var.db_instance_identifier}"]
    cluster             = ["arn:${local.partition}:eks:${local.region}:${local.account_id}:cluster/${var.cluster_name}"]
    # Named, not referenced: the function's own ARN in its role's policy would be a cycle.
    rotation_function = ["arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${var.name_prefix}-rotate-credentials"]
    # The instance's parameter group is named by the instance, not known here.
    db_parameter_groups = ["arn:${local.partition}:rds:${local.region}:${local.account_id}:pg:*"]
    # GetRandomPassword acts on no resource.
    any = ["*"]
  }

  # The symbolic condition values of functions.json (listing limited to the state prefix).
  condition_values = {
    state_keys       = ["${var.state_prefix}*"]
    alarm_state_keys = ["${var.state_prefix}alarms/*"]
  }
}

# Asynchronous invocations that failed every retry, and events EventBridge could not deliver.
resource "aws_sqs_queue" "failed_invocations" {
  # checkov:skip=CKV2_AWS_73:Failed events carry no secret values; the AWS-managed key avoids a key policy to maintain.
  name                      = "${var.name_prefix}-failed-invocations"
  message_retention_seconds = 1209600
  kms_master_key_id         = "alias/aws/sqs"
}

resource "aws_sqs_queue_policy" "failed_invocations" {
  queue_url = aws_sqs_queue.failed_invocations.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "EventBridgeDeadLetters"
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.failed_invocations.arn
      Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
    }]
  })
}

resource "aws_cloudwatch_log_group" "function" {
  # checkov:skip=CKV_AWS_158:The logs hold no secret values (the code never logs them); the service key suffices.
  for_each = local.functions

  name              = "/aws/lambda/${var.name_prefix}-${each.key}"
  retention_in_days = var.log_retention_days
}

resource "aws_lambda_function" "function" {
  # checkov:skip=CKV_AWS_173:The only variable is the spec's S3 URL, not a secret.
  # checkov:skip=CKV_AWS_272:Code signing needs a signing profile outside this module; artifacts come from CI.
  for_each = local.functions

  function_name    = "${var.name_prefix}-${each.key}"
  description      = each.value.description
  role             = aws_iam_role.function[each.key].arn
  runtime          = "provided.al2023"
  architectures    = ["arm64"]
  handler          = "bootstrap"
  filename         = "${var.lambda_artifacts_dir}/${each.key}/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.lambda_artifacts_dir}/${each.key}/bootstrap.zip")
  memory_size      = var.memory_size
  timeout          = each.value.timeout
  # Two concurrent runs of one function would race (two rotations on one secret, two
  # server-side applies, two scale-ups for one alarm).
  reserved_concurrent_executions = 1

  environment {
    variables = {
      PLATFORM_SPEC = "s3://${var.config_bucket}/${var.spec_key}"
    }
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.function[each.key].name
  }

  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = var.security_group_ids
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.failed_invocations.arn
  }

  tracing_config {
    mode = "PassThrough"
  }

  depends_on = [
    aws_iam_role_policy_attachment.vpc_access,
    aws_iam_role_policy.dead_letters,
  ]
}
