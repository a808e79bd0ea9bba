# An example root: the control plane for the platform described by infra/platform.yaml,
# with the seed's database and ClickHouse's IRSA role created too.
# Build the artifacts first (README): cargo lambda build --release --output-format zip
module "control_plane" {
  source = "../../modules/control-plane"

  name_prefix          = "acme-signoz"
  lambda_artifacts_dir = "${path.root}/../../../../target/lambda"
  architecture         = "x86_64"

  config_bucket = "acme-signoz-config"
  spec_key      = "platform.yaml"
  state_bucket  = "acme-signoz-control"
  state_prefix  = "state/"
  cold_bucket   = "acme-signoz-cold"

  app_secret_name        = "signoz/metadata-db/app"
  ttl_api_key_secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:signoz/admin-api-key-AbCdEf"

  create_database         = true
  db_instance_identifier  = "signoz-metadata"
  node_security_group_ids = ["sg-0123456789abcdef1"]

  create_clickhouse_role    = true
  cluster_oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"

  cluster_name  = "acme-prod"
  platform_name = "acme-prod"

  vpc_id          = "vpc-0123456789abcdef0"
  vpc_cidr        = "10.20.0.0/16"
  subnet_ids      = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
  route_table_ids = ["rtb-0123456789abcdef0"]

  alarm_actions = ["arn:aws:sns:eu-west-1:123456789012:platform-oncall"]
  tags          = { team = "platform", service = "signoz" }

  signoz_rotation_days = 30
  # The bucket's lifecycle is written by enforce-cold-storage from the platform spec.
  create_cold_bucket = true
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
