# An example root: the control plane for the platform described by infra/platform.yaml.
# Build the artifacts first: cargo lambda build --release --arm64 --output-format zip
module "control_plane" {
  source = "../../modules/control-plane"

  name_prefix          = "acme-prod-signoz-control"
  lambda_artifacts_dir = "${path.root}/../../../../target/lambda"

  config_bucket = "acme-signoz-config"
  spec_key      = "platform.yaml"
  state_bucket  = "acme-signoz-control"
  state_prefix  = "state/"
  cold_bucket   = "acme-signoz-cold"

  app_secret_arn         = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:signoz/metadata-db/app-AbCdEf"
  master_secret_arn      = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-3f2a9c1e-5b7d-4e0f-9a61-2c8d7e4b1f00-AbCdEf"
  ttl_api_key_secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:signoz/admin-api-key-AbCdEf"
  db_instance_identifier = "signoz-metadata"

  cluster_name  = "acme-prod"
  platform_name = "acme-prod"

  vpc_id             = "vpc-0123456789abcdef0"
  vpc_cidr           = "10.20.0.0/16"
  subnet_ids         = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
  security_group_ids = ["sg-0123456789abcdef0"]
  route_table_ids    = ["rtb-0123456789abcdef0"]

  signoz_rotation_days              = 30
  create_cold_bucket                = true
  signoz_retention_standard_ia_days = 30
  signoz_retention_glacier_days     = 90
  signoz_retention_expire_days      = 400
}

# The functions' Kubernetes RBAC, rendered from the spec:
#   cargo run -p signoz-control-cli -- rbac infra/platform.yaml > infra/kubernetes/rbac.yaml
# Applied with the cluster admin's credentials (the identity running Terraform).
data "aws_eks_cluster" "platform" {
  name = "acme-prod"
}

data "aws_eks_cluster_auth" "platform" {
  name = "acme-prod"
}

provider "kubernetes" {
  host                   = data.aws_eks_cluster.platform.endpoint
  cluster_ca_certificate = base64decode(data.aws_eks_cluster.platform.certificate_authority[0].data)
  token                  = data.aws_eks_cluster_auth.platform.token
}

module "cluster_rbac" {
  source = "../../modules/cluster-rbac"

  manifest_file = "${path.root}/../../../kubernetes/rbac.yaml"
}
