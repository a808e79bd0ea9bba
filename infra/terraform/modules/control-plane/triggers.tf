# EventBridge rules, one per (function, trigger kind) of functions.json. The keys of
# event_patterns are the trigger kinds of shared/src/events (TriggerKind).
locals {
  event_patterns = {
    SpecWritten = {
      source        = ["aws.s3"]
      "detail-type" = ["Object Created"]
      detail = {
        bucket = { name = [var.config_bucket] }
        object = { key = [var.spec_key] }
      }
    }
    # Needs a CloudTrail trail recording management events in the region.
    BucketApiCall = {
      source        = ["aws.s3"]
      "detail-type" = ["AWS API Call via CloudTrail"]
      detail = {
        eventSource       = ["s3.amazonaws.com"]
        eventName         = local.manifest.drift_event_names
        requestParameters = { bucketName = [var.cold_bucket] }
      }
    }
    RdsInstance = {
      source        = ["aws.rds"]
      "detail-type" = ["RDS DB Instance Event"]
      detail        = { SourceIdentifier = [var.db_instance_identifier] }
    }
    AlarmChange = {
      source        = ["aws.cloudwatch"]
      "detail-type" = ["CloudWatch Alarm State Change"]
      detail        = { alarmName = [{ prefix = var.alarm_name_prefix }] }
    }
  }

  rules = merge([
    for name, f in local.functions : merge(
      { for kind in f.triggers : "${name}/${kind}" => {
        function            = name
        schedule_expression = null
        event_pattern       = jsonencode(local.event_patterns[kind])
      } if contains(keys(local.event_patterns), kind) },
      contains(f.triggers, "Schedule") ? { "${name}/Schedule" = {
        function            = name
        schedule_expression = var.reconcile_schedule
        event_pattern       = null
      } } : {},
      contains(f.triggers, "Control") ? { "${name}/Control" = {
        function            = name
        schedule_expression = null
        event_pattern = jsonencode({
          source        = ["signoz.control-plane"]
          "detail-type" = f.control_detail_types
        })
      } } : {},
    )
  ]...)
}

resource "aws_cloudwatch_event_rule" "trigger" {
  for_each = local.rules
  tags     = var.tags

  name                = "${var.name_prefix}-${replace(each.key, "/", "-")}"
  schedule_expression = each.value.schedule_expression
  event_pattern       = each.value.event_pattern
}

resource "aws_cloudwatch_event_target" "trigger" {
  for_each = local.rules

  rule = aws_cloudwatch_event_rule.trigger[each.key].name
  arn  = aws_lambda_function.function[each.value.function].arn

  retry_policy {
    maximum_retry_attempts       = 4
    maximum_event_age_in_seconds = 3600
  }

  dead_letter_config {
    arn = aws_sqs_queue.failed_invocations.arn
  }
}

resource "aws_lambda_permission" "eventbridge" {
  for_each = local.rules

  statement_id  = "eventbridge-${replace(each.key, "/", "-")}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function[each.value.function].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.trigger[each.key].arn
}

# Secrets Manager calls the rotation function for each step.
resource "aws_lambda_permission" "secrets_manager" {
  for_each = { for name, f in local.functions : name => f if contains(f.triggers, "Rotation") }

  statement_id   = "secretsmanager-rotation"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.function[each.key].function_name
  principal      = "secretsmanager.amazonaws.com"
  source_account = local.account_id
}

# The app secret: this module owns it (created empty); provisioning writes its first value
# (PutSecretValue), the rotation function rotates it. Nothing else creates it.
resource "aws_secretsmanager_secret" "app" {
  # checkov:skip=CKV2_AWS_57:Rotation is configured below, by aws_secretsmanager_secret_rotation.app.
  name        = var.app_secret_name
  description = "SigNoz metadata database credentials (written by ${var.name_prefix}-rotate-credentials)"
  kms_key_id  = var.app_secret_kms_key_id
  tags        = var.tags
}

# Rotation only once everything a rotation needs exists: the function, its permission for
# Secrets Manager, its role's policy, its cluster access and the VPC endpoints; and never at
# once (rotate_immediately = false): the first value comes from provisioning.
resource "aws_secretsmanager_secret_rotation" "app" {
  for_each = aws_lambda_permission.secrets_manager

  secret_id           = aws_secretsmanager_secret.app.id
  rotation_lambda_arn = aws_lambda_function.function[each.key].arn
  rotate_immediately  = false

  rotation_rules {
    automatically_after_days = var.signoz_rotation_days
  }

  depends_on = [
    aws_iam_role_policy.function,
    aws_eks_access_policy_association.function,
    aws_vpc_endpoint.interface,
    aws_vpc_endpoint.s3,
    aws_vpc_security_group_ingress_rule.database_from_functions,
    aws_vpc_security_group_ingress_rule.cluster_from_functions,
  ]
}

# Lets an alarm name the function in its alarm actions.
resource "aws_lambda_permission" "alarm_action" {
  for_each = { for name, f in local.functions : name => f if contains(f.triggers, "AlarmChange") }

  statement_id   = "cloudwatch-alarm-action"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.function[each.key].function_name
  principal      = "lambda.alarms.cloudwatch.amazonaws.com"
  source_account = local.account_id
  source_arn     = "arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:${var.alarm_name_prefix}*"
}
