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

  # The created instance's managed secret, or the given one.
  master_secret_arn = var.create_database ? module.database[0].master_secret_arn : var.master_secret_arn

  # The symbolic resources of functions.json, resolved to ARNs.
  resource_arns = {
    spec_object         = ["arn:${local.partition}:s3:::${var.config_bucket}/${var.spec_key}"]
    state_bucket        = ["arn:${local.partition}:s3:::${var.state_bucket}"]
    state_objects       = ["arn:${local.partition}:s3:::${var.state_bucket}/${var.state_prefix}*"]
    alarm_state_objects = ["arn:${local.partition}:s3:::${var.state_bucket}/${var.state_prefix}alarms/*"]
    # sync-cluster's record of what SigNoz is delivered with (a rename or switch is seen against it).
    cluster_state_objects = ["arn:${local.partition}:s3:::${var.state_bucket}/${var.state_prefix}cluster/*"]
    cold_bucket           = ["arn:${local.partition}:s3:::${var.cold_bucket}"]
    app_secret            = [aws_secretsmanager_secret.app.arn]
    master_secret         = [local.master_secret_arn]
    ttl_api_key_secret    = [var.ttl_api_key_secret_arn]
    db_instance           = ["arn:${local.partition}:rds:${local.region}:${local.account_id}:db:${var.db_instance_identifier}"]
    cluster               = ["arn:${local.partition}:eks:${local.region}:${local.account_id}:cluster/${var.cluster_name}"]
    # DescribeAlarms of the alarms a remediation waits on (names come from the spec).
    alarms = ["arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:*"]
    # Named, not referenced: the function's own ARN in its role's policy would be a cycle.
    rotation_function = ["arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${var.name_prefix}-rotate-credentials"]
    # The instance's parameter group is named by the instance, not known here.
    db_parameter_groups = ["arn:${local.partition}:rds:${local.region}:${local.account_id}:pg:*"]
  }

  # The symbolic condition values of functions.json (listing limited to the state prefix).
  condition_values = {
    state_keys         = ["${var.state_prefix}*"]
    alarm_state_keys   = ["${var.state_prefix}alarms/*"]
    cluster_state_keys = ["${var.state_prefix}cluster/*"]
  }
}

# Asynchronous invocations that failed every retry, and events EventBridge could not
# deliver. SQS-managed encryption: EventBridge cannot write to a queue encrypted with the
# AWS-managed SQS key (alias/aws/sqs), whose key policy no one can extend, so undeliverable
# events were lost silently.
resource "aws_sqs_queue" "failed_invocations" {
  # checkov:skip=CKV2_AWS_73:SQS-managed SSE instead of a customer key: failed events carry no secret values, and EventBridge cannot use the AWS-managed key.
  name                      = "${var.name_prefix}-failed-invocations"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
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
      Condition = { ArnLike = { "aws:SourceArn" = "arn:${local.partition}:events:${local.region}:${local.account_id}:rule/${var.name_prefix}-*" } }
    }]
  })
}

# Anything in the dead-letter queue is an event no function handled: page someone.
resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  alarm_name          = "${var.name_prefix}-dead-letters"
  alarm_description   = "Events or invocations the control plane never handled are waiting in ${aws_sqs_queue.failed_invocations.name}."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.failed_invocations.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "function_errors" {
  for_each = local.functions

  alarm_name          = "${var.name_prefix}-${each.key}-errors"
  alarm_description   = "${each.key} failed an invocation (see its log group)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.function[each.key].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
}

# A throttled invocation waited or was dropped: reserved concurrency (rotate-credentials
# keeps one writer) or the account's limit was reached. Lambda and the event sources
# retry, but a platform that throttles on every schedule converges late.
resource "aws_cloudwatch_metric_alarm" "function_throttles" {
  for_each = local.functions

  alarm_name          = "${var.name_prefix}-${each.key}-throttles"
  alarm_description   = "${each.key} was throttled (reserved or account concurrency reached)."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = aws_lambda_function.function[each.key].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_log_group" "function" {
  # checkov:skip=CKV_AWS_158:The logs hold no secret values (the code never logs them); the service key suffices.
  for_each = local.functions

  name              = "/aws/lambda/${var.name_prefix}-${each.key}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_lambda_function" "function" {
  # checkov:skip=CKV_AWS_173:The variables are the spec's S3 URL and the rotation function's ARN, not secrets.
  # checkov:skip=CKV_AWS_272:Code signing needs a signing profile outside this module; artifacts come from CI.
  for_each = local.functions

  function_name    = "${var.name_prefix}-${each.key}"
  description      = each.value.description
  role             = aws_iam_role.function[each.key].arn
  runtime          = "provided.al2023"
  architectures    = [var.architecture]
  handler          = "bootstrap"
  filename         = "${var.lambda_artifacts_dir}/${each.key}/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.lambda_artifacts_dir}/${each.key}/bootstrap.zip")
  memory_size      = var.memory_size
  timeout          = each.value.timeout
  # Two concurrent runs of one function would race (two rotations on one secret, two
  # server-side applies, two scale-ups for one alarm).
  reserved_concurrent_executions = 1

  environment {
    # ROTATION_LAMBDA_ARN: provisioning turns rotation back on with it if someone turned
    # it off (the rotation itself is configured below, in triggers.tf).
    variables = merge(
      { PLATFORM_SPEC = "s3://${var.config_bucket}/${var.spec_key}" },
      contains(each.value.triggers, "Rotation") ? { ROTATION_LAMBDA_ARN = local.resource_arns.rotation_function[0] } : {},
    )
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.function[each.key].name
  }

  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = [aws_security_group.functions.id]
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.failed_invocations.arn
  }

  tracing_config {
    mode = "PassThrough"
  }

  tags = var.tags

  depends_on = [
    aws_iam_role_policy_attachment.vpc_access,
    aws_iam_role_policy.dead_letters,
    aws_iam_role_policy.function,
  ]
}
