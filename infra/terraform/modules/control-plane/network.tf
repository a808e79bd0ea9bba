# The functions run in private subnets. Every path they use is created here: HTTPS to the
# interface endpoints of the APIs they call, 5432 to the RDS instance, 443 to the EKS
# control plane, and the S3 gateway endpoint. A rotation that cannot reach Secrets Manager
# or the database is the most common failure in the field.

data "aws_eks_cluster" "this" {
  name = var.cluster_name
}

data "aws_subnet" "function" {
  for_each = toset(var.subnet_ids)
  id       = each.value
}

locals {
  # Secrets Manager, STS (the EKS token is a presigned STS call, verified by EKS itself,
  # but the SDK resolves credentials through STS in some set-ups), EKS DescribeCluster,
  # RDS Describe*. S3 goes through the gateway endpoint.
  interface_endpoints = var.create_vpc_endpoints ? toset(["secretsmanager", "sts", "eks", "rds"]) : toset([])
  subnet_azs          = [for s in data.aws_subnet.function : s.availability_zone]
  cluster_sg          = data.aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
  database_sg         = var.create_database ? module.database[0].security_group_id : var.database_security_group_id
}

resource "aws_security_group" "functions" {
  name        = "${var.name_prefix}-functions"
  description = "The control-plane functions: egress to the endpoints, RDS and the EKS API only"
  vpc_id      = var.vpc_id
  tags        = var.tags

  lifecycle {
    precondition {
      condition     = data.aws_eks_cluster.this.vpc_config[0].endpoint_private_access
      error_message = "The EKS cluster ${var.cluster_name} has no private endpoint: the functions run in private subnets and reach the API only through it. Enable endpoint_private_access."
    }
    precondition {
      condition     = length(distinct(local.subnet_azs)) == length(local.subnet_azs)
      error_message = "subnet_ids must hold at most one subnet per Availability Zone (interface endpoints take one subnet per AZ)."
    }
    precondition {
      condition     = !var.create_vpc_endpoints || length(var.route_table_ids) > 0
      error_message = "create_vpc_endpoints needs route_table_ids for the S3 gateway endpoint: without it the functions cannot read the spec or their state. Give the private route tables, or set create_vpc_endpoints = false when the VPC already routes S3 (gateway endpoint or NAT)."
    }
    precondition {
      condition     = local.master_secret_arn != null
      error_message = "Give master_secret_arn (the instance's RDS-managed master secret) or create_database = true."
    }
    precondition {
      condition     = local.database_sg != null
      error_message = "Give database_security_group_id (the RDS instance's security group) or create_database = true: the functions need 5432 to the database."
    }
  }
}

resource "aws_vpc_security_group_egress_rule" "functions_https" {
  security_group_id = aws_security_group.functions.id
  description       = "HTTPS to the interface endpoints, the EKS API and SigNoz's internal ALB"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = var.vpc_cidr
  tags              = var.tags
}

resource "aws_vpc_security_group_egress_rule" "functions_s3" {
  count             = length(aws_vpc_endpoint.s3)
  security_group_id = aws_security_group.functions.id
  description       = "HTTPS to S3 through the gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = aws_vpc_endpoint.s3[0].prefix_list_id
  tags              = var.tags
}

resource "aws_vpc_security_group_egress_rule" "functions_postgres" {
  security_group_id            = aws_security_group.functions.id
  description                  = "PostgreSQL to the SigNoz metadata database"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = local.database_sg
  tags                         = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "database_from_functions" {
  security_group_id            = local.database_sg
  description                  = "PostgreSQL from the control-plane functions"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.functions.id
  tags                         = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "cluster_from_functions" {
  security_group_id            = local.cluster_sg
  description                  = "Kubernetes API from the control-plane functions"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.functions.id
  tags                         = var.tags
}

resource "aws_security_group" "endpoints" {
  count = var.create_vpc_endpoints ? 1 : 0

  name        = "${var.name_prefix}-endpoints"
  description = "HTTPS from the control-plane functions to the interface endpoints"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_from_functions" {
  count = var.create_vpc_endpoints ? 1 : 0

  security_group_id            = aws_security_group.endpoints[0].id
  description                  = "HTTPS from the control-plane functions"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.functions.id
  tags                         = var.tags
}

resource "aws_vpc_endpoint" "interface" {
  for_each = local.interface_endpoints

  vpc_id              = var.vpc_id
  service_name        = "com.amazonaws.${local.region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = var.subnet_ids
  security_group_ids  = [aws_security_group.endpoints[0].id]
  private_dns_enabled = true
  tags                = var.tags
}

resource "aws_vpc_endpoint" "s3" {
  count = var.create_vpc_endpoints ? 1 : 0

  vpc_id            = var.vpc_id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = var.route_table_ids
  tags              = var.tags
}
