//! The platform spec: one YAML document describing the whole desired platform.
//!
//! Every struct here is plain data. Unknown keys are collected by the loader (see
//! `load.rs`) rather than rejected by `deny_unknown_fields`, so one pass reports all of
//! them together with the semantic problems found by `validate.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole desired state of one SigNoz platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformSpec {
    pub platform: Platform,
    pub state: StateStore,
    pub cluster: Cluster,
    pub database: Database,
    pub cold_storage: ColdStorage,
    pub retention: Retention,
    pub collectors: Collectors,
    pub instrumentation: Instrumentation,
    #[serde(default)]
    pub alarms: Alarms,
    /// The control plane's own traces and metrics; `None`: none are sent over OTLP.
    #[serde(default)]
    pub telemetry: Option<Telemetry>,
}

/// Identity of the platform; shared resource attributes come from here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Platform {
    /// Short name, used in labels and state keys (DNS label).
    pub name: String,
    /// `deployment.environment` resource attribute.
    pub environment: String,
    /// `service.namespace` resource attribute.
    pub service_namespace: String,
    /// AWS region of the bucket, database and cluster.
    pub region: String,
}

/// Where the control plane keeps state that must survive invocations (S3, conditional writes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateStore {
    pub bucket: String,
    #[serde(default = "default_state_prefix")]
    pub prefix: String,
}

fn default_state_prefix() -> String {
    "state/".into()
}

/// The EKS cluster running collectors, ClickHouse and SigNoz, and how Helm values reach it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// EKS cluster name (`DescribeCluster`, token header `x-k8s-aws-id`).
    pub name: String,
    /// Namespace of the SigNoz release and of the objects we own.
    pub namespace: String,
    /// Server-side apply field manager of every write we make.
    #[serde(default = "default_field_manager")]
    pub field_manager: String,
    pub delivery: Delivery,
    /// SigNoz's frontend behind an internal ALB (AWS Load Balancer Controller), if any.
    #[serde(default)]
    pub ingress: Option<Ingress>,
}

/// The SigNoz frontend's Ingress for the AWS Load Balancer Controller: an ALB shared
/// through an IngressGroup, HTTPS with the given ACM certificate, HTTP redirected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ingress {
    pub host: String,
    /// `internal` (default), or `internet-facing` with `allow_internet_facing: true`.
    #[serde(default = "default_alb_scheme")]
    pub scheme: String,
    /// Explicit consent to expose SigNoz (and its admin API) to the internet.
    #[serde(default)]
    pub allow_internet_facing: bool,
    /// `alb.ingress.kubernetes.io/group.name`: the shared ALB.
    pub group_name: String,
    /// `alb.ingress.kubernetes.io/group.order` within the group (-1000 to 1000).
    #[serde(default)]
    pub group_order: Option<i32>,
    pub certificate_arn: String,
    #[serde(default = "default_health_check_path")]
    pub health_check_path: String,
    #[serde(default = "default_ingress_class")]
    pub class_name: String,
}

fn default_alb_scheme() -> String {
    "internal".into()
}

fn default_health_check_path() -> String {
    "/api/v1/health".into()
}

fn default_ingress_class() -> String {
    "alb".into()
}

fn default_field_manager() -> String {
    "signoz-control-plane".into()
}

/// How the SigNoz Helm values are delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub method: DeliveryMethod,
    /// Helm release name; the chart names its objects from it (`cluster::render::chart`).
    pub release: String,
    pub chart_version: String,
    #[serde(default)]
    pub argocd: Option<ArgoCdDelivery>,
    #[serde(default)]
    pub flux: Option<FluxDelivery>,
    /// Explicit consent to a destructive delivery change: what the control plane delivered
    /// before and may now replace (a release rename re-creates SigNoz, a switch of method
    /// uninstalls it from the old tool).
    #[serde(default)]
    pub replaces: Option<DeliveryReplacement>,
}

/// The delivery a destructive change replaces, as `signoz-control` reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryReplacement {
    /// `Kind/namespace/name` of the Application or HelmRelease delivered before.
    pub object: String,
    /// The Helm release name delivered before.
    pub release: String,
}

/// Which GitOps tool owns the Helm release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMethod {
    Argocd,
    Flux,
}

/// An ArgoCD `Application` whose `spec.source.helm.valuesObject` we write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArgoCdDelivery {
    pub application: String,
    pub namespace: String,
    #[serde(default = "default_argocd_project")]
    pub project: String,
    pub repo_url: String,
    /// The destination cluster's API URL (default the in-cluster one); or `destination_name`.
    #[serde(default)]
    pub destination_server: Option<String>,
    /// The destination cluster's name in ArgoCD; exclusive with `destination_server`.
    #[serde(default)]
    pub destination_name: Option<String>,
    /// How ArgoCD syncs an Application we create (one we adopt keeps its owner's policy).
    #[serde(default)]
    pub sync: ArgoSync,
}

/// `automated` (ArgoCD applies every change, prunes and self-heals) or `manual` (a person
/// presses sync); both retry a failed sync a bounded number of times.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArgoSync {
    #[default]
    Automated,
    Manual,
}

fn default_argocd_project() -> String {
    "default".into()
}

/// The in-cluster API server, ArgoCD's name for the cluster it runs in.
pub const ARGOCD_IN_CLUSTER: &str = "https://kubernetes.default.svc";

/// A Flux `HelmRelease` fed by a values ConfigMap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FluxDelivery {
    pub namespace: String,
    pub source_kind: String,
    pub source_name: String,
    pub values_configmap: String,
}

/// SigNoz's metadata store on RDS PostgreSQL and its credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Database {
    pub instance_identifier: String,
    pub database_name: String,
    /// The master secret: RDS-managed (`rds!...`, read-only to us) or a plain one.
    pub master_secret_arn: String,
    /// The secret SigNoz's credentials live in (rotated by us).
    pub app_secret_name: String,
    pub strategy: RotationStrategy,
    /// Login role (single-user) or the base name of the two alternating roles.
    pub username: String,
    /// NOLOGIN role that owns SigNoz's objects; login roles are members and `SET ROLE` to it.
    pub owner_role: String,
    pub rotation_days: u32,
    #[serde(default = "default_password_length")]
    pub password_length: u32,
    pub tls: DatabaseTls,
    #[serde(default)]
    pub require_multi_az: bool,
    /// What to do with the instance's posture findings.
    #[serde(default)]
    pub posture: PostureCheck,
    pub kubernetes_secret: KubernetesSecret,
    /// Other workloads that read the Secret and restart when it changes; SigNoz's own
    /// StatefulSet, named by the chart from the release, always restarts.
    #[serde(default)]
    pub restart: Vec<WorkloadRef>,
}

fn default_password_length() -> u32 {
    32
}

/// Rotation strategy of the app secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RotationStrategy {
    SingleUser,
    AlternatingUsers,
}

/// How the database server is verified; there is no mode without TLS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseTls {
    pub mode: TlsMode,
    /// PEM CA bundle; absent means the RDS global bundle shipped with the function.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// How the function's logins start TLS (the DSN handed to SigNoz is not affected).
    #[serde(default, skip_serializing_if = "TlsNegotiation::is_default")]
    pub negotiation: TlsNegotiation,
}

/// How a login starts TLS, as libpq's `sslnegotiation`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsNegotiation {
    /// Ask with an `SSLRequest` first: every PostgreSQL version, and any pooler.
    #[default]
    Postgres,
    /// Start the TLS handshake at once (ALPN `postgresql`): one round trip less per
    /// login, PostgreSQL 17 or later reached without a pooler that needs `SSLRequest`.
    Direct,
}

impl TlsNegotiation {
    fn is_default(&self) -> bool {
        *self == TlsNegotiation::default()
    }
}

/// Server verification level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    VerifyFull,
    VerifyCa,
}

/// How provisioning treats the RDS instance's posture findings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PostureCheck {
    /// Fail provisioning on any finding (default: log and report them only).
    #[serde(default)]
    pub enforce: bool,
}

/// The Kubernetes Secret SigNoz reads its DSN from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KubernetesSecret {
    pub name: String,
    #[serde(default = "default_dsn_key")]
    pub dsn_key: String,
    /// Key of the CA bundle (PEM) the DSN's `sslrootcert` names.
    #[serde(default = "default_ca_key")]
    pub ca_key: String,
    /// Directory the SigNoz pod mounts the CA bundle in (chart `signoz.additionalVolumes`).
    #[serde(default = "default_ca_mount_path")]
    pub ca_mount_path: String,
}

fn default_dsn_key() -> String {
    "SIGNOZ_SQLSTORE_POSTGRES_DSN".into()
}

fn default_ca_key() -> String {
    "database-ca.pem".into()
}

fn default_ca_mount_path() -> String {
    "/etc/signoz-control/database-ca".into()
}

/// A workload in the cluster, by kind and name (namespace defaults to the cluster's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadRef {
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

/// The S3 bucket ClickHouse moves old parts to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColdStorage {
    pub bucket: String,
    /// Key prefix of ClickHouse's S3 disk; the lifecycle rules are scoped to it.
    #[serde(default)]
    pub prefix: String,
    /// Storage class -> days after the object reached S3. Only STANDARD_IA and GLACIER_IR
    /// are readable by ClickHouse without a restore.
    pub transitions: BTreeMap<String, u32>,
    /// Days after which S3 deletes an object. The control plane writes at least the
    /// longest cold period SigNoz's parts have ever had plus the safety margin.
    pub expiration_days: u32,
    #[serde(default = "default_abort_multipart_days")]
    pub abort_incomplete_multipart_days: u32,
    /// Days a noncurrent version lives before S3 deletes it (versioning once enabled
    /// leaves them behind, and delete markers, billed until expired).
    #[serde(default = "default_noncurrent_days")]
    pub noncurrent_expiration_days: u32,
    /// S3's `TransitionDefaultMinimumObjectSize`, made explicit.
    pub transition_minimum_object_size: MinimumObjectSize,
    pub encryption: Encryption,
    /// IAM role ClickHouse's service account assumes (IRSA) to reach the bucket.
    pub clickhouse_role_arn: String,
    #[serde(default)]
    pub cost: Option<CostModel>,
}

fn default_abort_multipart_days() -> u32 {
    7
}

fn default_noncurrent_days() -> u32 {
    1
}

/// The two values S3 accepts for `TransitionDefaultMinimumObjectSize`. For the tiers
/// ClickHouse can read (Standard-IA, Glacier IR) both keep objects under 128 KB in
/// STANDARD: they differ only for GLACIER and DEEP_ARCHIVE, which the spec refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MinimumObjectSize {
    /// Objects under 128 KB transition to no storage class (S3's default since 2024).
    #[serde(rename = "all_storage_classes_128k")]
    AllStorageClasses128k,
    /// Objects under 128 KB transition to GLACIER or DEEP_ARCHIVE only, never to
    /// Standard-IA or Glacier IR.
    VariesByStorageClass,
}

/// Default bucket encryption.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Encryption {
    pub algorithm: EncryptionAlgorithm,
    /// Key ID, key ARN, `alias/<name>` or alias ARN (aws:kms only).
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// S3 Bucket Keys (aws:kms only; on unless set to false): one data key per bucket
    /// instead of a KMS call per object, which cuts KMS requests and their cost.
    #[serde(default)]
    pub bucket_key_enabled: Option<bool>,
}

/// Server-side encryption algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EncryptionAlgorithm {
    #[serde(rename = "AES256")]
    Aes256,
    #[serde(rename = "aws:kms")]
    AwsKms,
}

/// Compressed GB per day, per signal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DailyIngest {
    pub traces: f64,
    pub logs: f64,
    pub metrics: f64,
}

/// Inputs of the cold-storage cost curve. Prices default to S3's us-east-1 list prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostModel {
    /// Compressed GB ClickHouse moves to S3 per day, per signal.
    pub daily_ingest_gb: DailyIngest,
    /// Average size of the objects ClickHouse writes to its S3 disk (KB): gives the
    /// object count that transition requests are billed on.
    pub average_object_kb: f64,
    /// Share of the bytes in objects under 128 KB (they stay in STANDARD). Default: all
    /// of them when the average is under 128 KB, none otherwise.
    #[serde(default)]
    pub small_object_share: Option<f64>,
    /// Share of the data in Standard-IA and Glacier IR read back per month (retrievals).
    #[serde(default)]
    pub queried_share: f64,
    /// USD per GB-month.
    #[serde(default = "price::standard")]
    pub standard_gb_month: f64,
    #[serde(default = "price::standard_ia")]
    pub standard_ia_gb_month: f64,
    #[serde(default = "price::glacier_ir")]
    pub glacier_ir_gb_month: f64,
    /// USD per 1,000 lifecycle transition requests into each class.
    #[serde(default = "price::standard_ia_transition")]
    pub standard_ia_transition_per_1000: f64,
    #[serde(default = "price::glacier_ir_transition")]
    pub glacier_ir_transition_per_1000: f64,
    /// USD per GB retrieved from each class.
    #[serde(default = "price::standard_ia_retrieval")]
    pub standard_ia_retrieval_gb: f64,
    #[serde(default = "price::glacier_ir_retrieval")]
    pub glacier_ir_retrieval_gb: f64,
}

/// S3 list prices in us-east-1 (aws.amazon.com/s3/pricing), the defaults of [`CostModel`].
pub mod price {
    pub fn standard() -> f64 {
        0.023
    }
    pub fn standard_ia() -> f64 {
        0.0125
    }
    pub fn glacier_ir() -> f64 {
        0.004
    }
    pub fn standard_ia_transition() -> f64 {
        0.01
    }
    pub fn glacier_ir_transition() -> f64 {
        0.02
    }
    pub fn standard_ia_retrieval() -> f64 {
        0.01
    }
    pub fn glacier_ir_retrieval() -> f64 {
        0.03
    }
}

/// ClickHouse retention per signal, applied through SigNoz's TTL API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retention {
    pub traces: SignalRetention,
    pub logs: SignalRetention,
    pub metrics: SignalRetention,
    /// Extra days S3 keeps an object beyond the longest cold period ClickHouse references
    /// (at least [`crate::spec::MIN_SAFETY_MARGIN_DAYS`]).
    pub safety_margin_days: u32,
    pub ttl_api: TtlApi,
}

/// How long one signal lives, and how long of that on hot disks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalRetention {
    pub total_days: u32,
    pub hot_days: u32,
}

impl SignalRetention {
    /// Days a part lives in S3 before ClickHouse drops it.
    pub fn cold_days(&self) -> u32 {
        self.total_days.saturating_sub(self.hot_days)
    }
}

/// SigNoz's query service, where TTLs are set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TtlApi {
    pub url: String,
    /// Secrets Manager secret holding the admin API key (header `SIGNOZ-API-KEY`).
    pub api_key_secret: String,
    /// A TTL job SigNoz reports `pending` (or refuses as already running) for longer than
    /// this is reported as stuck: SigNoz never times a job out.
    #[serde(default = "default_stuck_after_minutes")]
    pub stuck_after_minutes: u32,
}

fn default_stuck_after_minutes() -> u32 {
    60
}

/// The OpenTelemetry collectors of the SigNoz chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collectors {
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub scaling: CollectorScaling,
    pub memory_limiter: MemoryLimiter,
    pub batch: Batch,
    pub spot: Spot,
    #[serde(default)]
    pub infra_targets: Vec<ScrapeTarget>,
}

/// KEDA scaling on ingestion pressure (a Prometheus query), not CPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectorScaling {
    pub prometheus_address: String,
    pub query: String,
    pub threshold: f64,
    pub activation_threshold: f64,
    pub fallback_replicas: u32,
    #[serde(default = "default_polling_seconds")]
    pub polling_interval_seconds: u32,
    #[serde(default = "default_cooldown_seconds")]
    pub cooldown_seconds: u32,
    pub scale_up: ScalingBehavior,
    pub scale_down: ScalingBehavior,
}

fn default_polling_seconds() -> u32 {
    30
}

fn default_cooldown_seconds() -> u32 {
    300
}

/// One direction of HPA behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingBehavior {
    pub stabilization_window_seconds: u32,
    /// Largest change per period, in percent of current replicas.
    pub percent: u32,
    pub period_seconds: u32,
}

/// The collector's `memory_limiter` processor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryLimiter {
    pub limit_mib: u32,
    pub spike_limit_mib: u32,
    /// Go duration, e.g. `5s`.
    pub check_interval: String,
}

/// The collector's `batch` processor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// Go duration, e.g. `10s`.
    pub timeout: String,
    pub send_batch_size: u32,
    pub send_batch_max_size: u32,
}

/// Spot scheduling of collectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spot {
    pub enabled: bool,
    /// Weight (1-100) of the preferred Spot node affinity.
    pub weight: u32,
}

/// A Prometheus endpoint scraped by the `metrics/infra` pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScrapeTarget {
    pub job: String,
    /// `host:port` of the metrics endpoint.
    pub address: String,
    #[serde(default = "default_metrics_path")]
    pub path: String,
    #[serde(default = "default_scrape_interval")]
    pub interval: String,
}

fn default_metrics_path() -> String {
    "/metrics".into()
}

fn default_scrape_interval() -> String {
    "30s".into()
}

/// The OpenTelemetry Operator `Instrumentation` and the workloads that opt in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instrumentation {
    pub name: String,
    /// OTLP/HTTP endpoint of the collector (port 4318 for the Python injector); default
    /// the chart's collector Service for the release.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The operator itself, delivered highly available through the same GitOps path.
    #[serde(default)]
    pub operator: Option<OperatorDelivery>,
    pub propagators: Vec<String>,
    pub sampler: Sampler,
    pub python_image: String,
    #[serde(default)]
    pub workloads: Vec<InstrumentedWorkload>,
}

/// The OpenTelemetry Operator's own chart (open-telemetry/opentelemetry-helm-charts
/// `opentelemetry-operator`), delivered like SigNoz's with replicas spread over nodes (and
/// zones) and a PodDisruptionBudget, so the injecting webhook survives node rotations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorDelivery {
    #[serde(default = "default_operator_release")]
    pub release: String,
    pub namespace: String,
    pub chart_version: String,
    /// Helm repository (ArgoCD), or the Flux HelmRepository's name with `source_name`.
    #[serde(default = "default_operator_repo")]
    pub repo_url: String,
    #[serde(default)]
    pub source_name: Option<String>,
    #[serde(default = "default_operator_replicas")]
    pub replicas: u32,
    /// Spread replicas across availability zones too, not only nodes.
    #[serde(default)]
    pub spread_across_zones: bool,
}

fn default_operator_release() -> String {
    "opentelemetry-operator".into()
}

fn default_operator_repo() -> String {
    "https://open-telemetry.github.io/opentelemetry-helm-charts".into()
}

fn default_operator_replicas() -> u32 {
    2
}

/// Sampler of the Instrumentation resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampler {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub argument: Option<String>,
}

/// A workload that gets Python auto-instrumentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstrumentedWorkload {
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    /// `OTEL_SERVICE_NAME` of the workload.
    pub service_name: String,
}

/// The control plane's own telemetry: each invocation's trace and counters, sent over
/// OTLP/HTTP to the platform's SigNoz collector once the invocation has answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Telemetry {
    /// The off switch: `false` sends nothing over OTLP (the CloudWatch metric lines stay).
    #[serde(default = "default_telemetry_enabled")]
    pub enabled: bool,
    /// OTLP/HTTP base URL of the collector, reachable from the functions' subnets
    /// (`/v1/traces` and `/v1/metrics` are appended).
    pub endpoint: String,
    /// The most an invocation waits for the collector; past it the batch is dropped.
    #[serde(default = "default_export_timeout_ms")]
    pub export_timeout_ms: u32,
}

fn default_telemetry_enabled() -> bool {
    true
}

fn default_export_timeout_ms() -> u32 {
    500
}

/// Alarm remediation policies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Alarms {
    #[serde(default)]
    pub policies: Vec<AlarmPolicy>,
}

/// What to do when matching alarms change state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmPolicy {
    pub name: String,
    /// Alarm names this policy handles: exact, or a prefix ending in `*`.
    pub alarm: String,
    pub action: AlarmAction,
    #[serde(default)]
    pub cooldown_minutes: u32,
}

impl AlarmPolicy {
    /// Whether an alarm name falls under this policy.
    pub fn matches(&self, alarm_name: &str) -> bool {
        match self.alarm.strip_suffix('*') {
            Some(prefix) => alarm_name.starts_with(prefix),
            None => alarm_name == self.alarm,
        }
    }
}

/// The remediation a policy performs; each is bounded and reversible.
///
/// In YAML an action with settings is a one-key map (`{scale_collectors: {step: 2, ...}}`)
/// and one without is a plain string (`rotate_now`).
#[derive(Debug, Clone, PartialEq)]
pub enum AlarmAction {
    /// Raise KEDA's replica bounds by `step` per ALARM, never past `ceiling`.
    ScaleCollectors(ScaleCollectors),
    /// Lower hot days of every signal by `step_days` per ALARM, never below `floor_hot_days`.
    /// SigNoz applies it to parts written afterwards only (`materialize_ttl_after_modify=0`):
    /// it frees no disk at once, and raises how long S3 must keep objects for good.
    MoveToColdSooner(MoveToColdSooner),
    /// Run a reconcile now.
    ReconcileNow(ReconcileNow),
    /// Start a rotation of the app secret.
    RotateNow,
    /// Log a structured record only.
    NotifyOnly,
}

/// Settings of [`AlarmAction::ScaleCollectors`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleCollectors {
    pub step: u32,
    pub ceiling: u32,
    /// Raise `minReplicaCount` too, not only `maxReplicaCount`.
    #[serde(default)]
    pub raise_min: bool,
}

/// Settings of [`AlarmAction::MoveToColdSooner`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoveToColdSooner {
    pub step_days: u32,
    pub floor_hot_days: u32,
}

/// Settings of [`AlarmAction::ReconcileNow`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconcileNow {
    pub target: ReconcileTarget,
}

const ALARM_ACTIONS: &[&str] = &[
    "scale_collectors",
    "move_to_cold_sooner",
    "reconcile_now",
    "rotate_now",
    "notify_only",
];

/// Written back in the same shape it is read in (a name, or a one-key map), so a spec
/// serialized by the tooling loads again.
impl Serialize for AlarmAction {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fn one<S: serde::Serializer, T: Serialize>(
            serializer: S,
            name: &str,
            settings: &T,
        ) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = serializer.serialize_map(Some(1))?;
            map.serialize_entry(name, settings)?;
            map.end()
        }
        match self {
            AlarmAction::ScaleCollectors(s) => one(serializer, "scale_collectors", s),
            AlarmAction::MoveToColdSooner(s) => one(serializer, "move_to_cold_sooner", s),
            AlarmAction::ReconcileNow(s) => one(serializer, "reconcile_now", s),
            AlarmAction::RotateNow => serializer.serialize_str("rotate_now"),
            AlarmAction::NotifyOnly => serializer.serialize_str("notify_only"),
        }
    }
}

impl<'de> Deserialize<'de> for AlarmAction {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ActionVisitor;

        impl<'de> serde::de::Visitor<'de> for ActionVisitor {
            type Value = AlarmAction;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an action name or a one-key map of action to settings")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<AlarmAction, E> {
                match name {
                    "rotate_now" => Ok(AlarmAction::RotateNow),
                    "notify_only" => Ok(AlarmAction::NotifyOnly),
                    "scale_collectors" | "move_to_cold_sooner" | "reconcile_now" => Err(E::custom(
                        format!("action {name} needs settings: {{{name}: {{...}}}}"),
                    )),
                    other => Err(E::unknown_variant(other, ALARM_ACTIONS)),
                }
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<AlarmAction, A::Error> {
                use serde::de::Error;
                let name: String = map
                    .next_key()?
                    .ok_or_else(|| A::Error::custom("empty action map"))?;
                // Settings go through the same MapAccess, so unknown keys inside are still seen.
                let action = match name.as_str() {
                    "scale_collectors" => AlarmAction::ScaleCollectors(map.next_value()?),
                    "move_to_cold_sooner" => AlarmAction::MoveToColdSooner(map.next_value()?),
                    "reconcile_now" => AlarmAction::ReconcileNow(map.next_value()?),
                    "rotate_now" | "notify_only" => {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        self.visit_str(&name)?
                    }
                    other => return Err(A::Error::unknown_variant(other, ALARM_ACTIONS)),
                };
                if map.next_key::<String>()?.is_some() {
                    return Err(A::Error::custom("an action map has exactly one key"));
                }
                Ok(action)
            }
        }

        deserializer.deserialize_any(ActionVisitor)
    }
}

/// What a `reconcile_now` action reconciles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconcileTarget {
    ColdStorage,
    Cluster,
}
