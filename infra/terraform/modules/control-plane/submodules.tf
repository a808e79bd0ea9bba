# The seed's database and ClickHouse's identity, optional (the example turns both on).

module "database" {
  source = "../database"
  count  = var.create_database ? 1 : 0

  identifier               = var.db_instance_identifier
  vpc_id                   = var.vpc_id
  subnet_ids               = var.subnet_ids
  node_security_group_ids  = var.node_security_group_ids
  allowed_cidrs            = var.database_allowed_cidrs
  multi_az                 = var.database_multi_az
  deletion_protection      = true
  permissions_boundary_arn = var.permissions_boundary_arn
  tags                     = var.tags
}

module "clickhouse_role" {
  source = "../clickhouse-irsa"
  count  = var.create_clickhouse_role ? 1 : 0

  role_name                = "${var.name_prefix}-clickhouse"
  oidc_provider_arn        = var.cluster_oidc_provider_arn
  oidc_issuer_url          = data.aws_eks_cluster.this.identity[0].oidc[0].issuer
  namespace                = var.cluster_namespace
  service_account          = var.clickhouse_service_account
  cold_bucket              = var.cold_bucket
  cold_prefix              = var.signoz_cold_prefix
  permissions_boundary_arn = var.permissions_boundary_arn
  tags                     = var.tags
}
