data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each = local.functions

  name                 = "${var.name_prefix}-${each.key}"
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

# Logs and the ENIs of a function in a VPC (what SAM adds for VpcConfig).
resource "aws_iam_role_policy_attachment" "vpc_access" {
  for_each = local.functions

  role       = aws_iam_role.function[each.key].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

resource "aws_iam_role_policy" "dead_letters" {
  for_each = local.functions

  name = "dead-letters"
  role = aws_iam_role.function[each.key].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "SendFailedInvocations"
      Effect   = "Allow"
      Action   = ["sqs:SendMessage"]
      Resource = aws_sqs_queue.failed_invocations.arn
    }]
  })
}

# Only the actions the function's code calls, on the resources it touches (functions.json).
resource "aws_iam_role_policy" "function" {
  for_each = { for name, f in local.functions : name => f if length(f.statements) > 0 }

  name = "least-privilege"
  role = aws_iam_role.function[each.key].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [for s in each.value.statements : merge(
      {
        Sid      = s.sid
        Effect   = "Allow"
        Action   = s.actions
        Resource = local.resource_arns[s.resources]
      },
      length(lookup(s, "conditions", [])) == 0 ? {} : {
        Condition = { for c in s.conditions : c.test => { (c.variable) = local.condition_values[c.values] } }
      },
    )]
  })
}

# Kubernetes access without kubectl or aws-auth. EKS access policies cover built-in API
# groups only and cannot be extended, so each function's role is mapped to one Kubernetes
# group of its own, and the Roles `signoz-control rbac` renders from the platform spec
# grant that group exactly what the function calls (the cluster-rbac module applies them).
resource "aws_eks_access_entry" "function" {
  for_each = { for name, f in local.functions : name => f if f.cluster_access }

  cluster_name      = var.cluster_name
  principal_arn     = aws_iam_role.function[each.key].arn
  type              = "STANDARD"
  kubernetes_groups = ["signoz-control:${var.platform_name}:${each.key}"]
}
