//! Semantic validation of the platform spec: every problem at once, each with its path.

use std::collections::BTreeSet;
use std::fmt;

use super::model::*;

/// S3 refuses a transition to STANDARD_IA before this many days.
pub const MIN_STANDARD_IA_DAYS: u32 = 30;
/// S3 refuses a GLACIER_IR transition less than this many days after STANDARD_IA.
pub const MIN_DAYS_IN_STANDARD_IA: u32 = 30;
/// The smallest `retention.safety_margin_days`: ClickHouse drops a part only in a TTL
/// merge, at most every `merge_with_ttl_timeout` (4 hours) per partition and behind the
/// background pool's queue, and SigNoz's tables are partitioned by day, so a part's rows
/// span up to a day and the part moves and is dropped as a whole: one day for the part's
/// span, one for late merges (a busy pool, a replica catching up).
pub const MIN_SAFETY_MARGIN_DAYS: u32 = 2;
/// Storage classes ClickHouse reads directly, in transition order.
pub const READABLE_TIERS: [&str; 2] = ["STANDARD_IA", "GLACIER_IR"];
/// Propagators the OpenTelemetry Operator accepts.
pub const PROPAGATORS: [&str; 8] = [
    "tracecontext",
    "baggage",
    "b3",
    "b3multi",
    "jaeger",
    "xray",
    "ottrace",
    "none",
];
/// Sampler types the OpenTelemetry Operator accepts (its Instrumentation CRD's enum).
pub const SAMPLERS: [&str; 8] = [
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
    "jaeger_remote",
    "xray",
];
/// Source kinds a Flux HelmRelease's `chart.spec.sourceRef` accepts (its CRD's enum).
pub const FLUX_SOURCE_KINDS: [&str; 3] = ["HelmRepository", "GitRepository", "Bucket"];
/// Kinds a delivery can be.
pub const DELIVERY_KINDS: [&str; 2] = ["Application", "HelmRelease"];
/// Workload kinds that carry a pod template we can annotate.
pub const WORKLOAD_KINDS: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];
/// Port of OTLP over HTTP, the protocol of the Python injector.
pub const OTLP_HTTP_PORT: u16 = 4318;

/// One thing wrong with the spec: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Collects problems as validation walks the spec.
#[derive(Default)]
pub(crate) struct Problems(pub(crate) Vec<Problem>);

impl Problems {
    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn dns_label(&mut self, path: &str, value: &str) {
        let ok = !value.is_empty()
            && value.len() <= 63
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !value.starts_with('-')
            && !value.ends_with('-');
        if !ok {
            self.add(
                path,
                format!("must be a DNS label (lowercase letters, digits, '-', at most 63), got {value:?}"),
            );
        }
    }

    fn dns_subdomain(&mut self, path: &str, value: &str) {
        let ok = !value.is_empty()
            && value.len() <= 253
            && value.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !ok {
            self.add(path, format!("must be a DNS subdomain name, got {value:?}"));
        }
    }

    fn pg_identifier(&mut self, path: &str, value: &str) {
        let mut bytes = value.bytes();
        let ok = value.len() <= 63
            && bytes
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
            && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            self.add(
                path,
                format!(
                    "must be a lowercase PostgreSQL identifier ([a-z_][a-z0-9_]*, at most 63), got {value:?}"
                ),
            );
        }
    }

    fn bucket_name(&mut self, path: &str, value: &str) {
        let ok = (3..=63).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && value
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && value
                .bytes()
                .last()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && !value.contains("..");
        if !ok {
            self.add(
                path,
                format!("must be a valid S3 bucket name, got {value:?}"),
            );
        }
    }

    fn non_empty(&mut self, path: &str, value: &str) {
        if value.trim().is_empty() {
            self.add(path, "must not be empty");
        }
    }

    fn range(&mut self, path: &str, value: u32, min: u32, max: u32) {
        if !(min..=max).contains(&value) {
            self.add(
                path,
                format!("must be between {min} and {max}, got {value}"),
            );
        }
    }

    fn duration(&mut self, path: &str, value: &str) {
        if parse_go_duration_secs(value).is_none() {
            self.add(
                path,
                format!("must be a positive duration such as \"5s\" or \"1m\", got {value:?}"),
            );
        }
    }

    fn http_url(&mut self, path: &str, value: &str) -> Option<url::Url> {
        match url::Url::parse(value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Some(u),
            _ => {
                self.add(path, format!("must be an http(s) URL, got {value:?}"));
                None
            }
        }
    }

    fn one_of(&mut self, path: &str, value: &str, allowed: &[&str]) {
        if !allowed.contains(&value) {
            self.add(
                path,
                format!("must be one of {}, got {value:?}", allowed.join(", ")),
            );
        }
    }

    fn arn(&mut self, path: &str, value: &str, service: &str, what: &str) {
        let parts: Vec<&str> = value.splitn(6, ':').collect();
        let ok = parts.len() == 6
            && parts[0] == "arn"
            && parts[1].starts_with("aws")
            && parts[2] == service
            && parts[5].starts_with(what);
        if !ok {
            self.add(
                path,
                format!("must be an arn:aws:{service}:...:{what}... ARN, got {value:?}"),
            );
        }
    }
}

/// Seconds of a Go-style duration (`500ms`, `5s`, `1m`, `1h`); `None` when malformed or zero.
pub fn parse_go_duration_secs(value: &str) -> Option<f64> {
    let split = value.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    (number > 0.0).then_some(number * scale)
}

/// Checks every semantic rule and returns every problem found.
pub fn validate(spec: &PlatformSpec) -> Vec<Problem> {
    let mut p = Problems::default();
    validate_platform(&mut p, spec);
    validate_cluster(&mut p, spec);
    validate_database(&mut p, &spec.database);
    validate_retention(&mut p, &spec.retention);
    validate_cold_storage(&mut p, &spec.cold_storage, &spec.retention);
    validate_state_location(&mut p, spec);
    validate_collectors(&mut p, &spec.collectors);
    validate_instrumentation(&mut p, spec);
    validate_alarms(&mut p, spec);
    if let Some(t) = &spec.telemetry {
        validate_telemetry(&mut p, t);
    }
    p.0
}

/// Bounds of `telemetry.export_timeout_ms`: long enough for a collector in the VPC, short
/// enough that a dead one never holds an invocation.
pub const EXPORT_TIMEOUT_MS: (u32, u32) = (50, 5000);

fn validate_telemetry(p: &mut Problems, t: &Telemetry) {
    if let Some(url) = p.http_url("telemetry.endpoint", &t.endpoint) {
        // The endpoint is logged and travels in attributes: it must not carry a secret.
        if !url.username().is_empty() || url.password().is_some() {
            p.add(
                "telemetry.endpoint",
                "must not carry credentials (user:password@): the URL is logged",
            );
        }
        if url.query().is_some() || url.fragment().is_some() {
            p.add(
                "telemetry.endpoint",
                format!(
                    "is the OTLP base URL (/v1/traces and /v1/metrics are appended): no query or fragment, got {:?}",
                    t.endpoint
                ),
            );
        }
    }
    let (min, max) = EXPORT_TIMEOUT_MS;
    p.range("telemetry.export_timeout_ms", t.export_timeout_ms, min, max);
}

fn validate_platform(p: &mut Problems, spec: &PlatformSpec) {
    p.dns_label("platform.name", &spec.platform.name);
    p.non_empty("platform.environment", &spec.platform.environment);
    p.non_empty(
        "platform.service_namespace",
        &spec.platform.service_namespace,
    );
    let region_ok = spec.platform.region.split('-').count() >= 3
        && spec
            .platform
            .region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !region_ok {
        p.add(
            "platform.region",
            format!(
                "must be an AWS region such as \"eu-west-1\", got {:?}",
                spec.platform.region
            ),
        );
    }
    p.bucket_name("state.bucket", &spec.state.bucket);
    if !spec.state.prefix.is_empty() && !spec.state.prefix.ends_with('/') {
        p.add(
            "state.prefix",
            format!("must end with '/', got {:?}", spec.state.prefix),
        );
    }
}

fn validate_cluster(p: &mut Problems, spec: &PlatformSpec) {
    let c = &spec.cluster;
    p.non_empty("cluster.name", &c.name);
    p.dns_label("cluster.namespace", &c.namespace);
    p.non_empty("cluster.field_manager", &c.field_manager);
    p.dns_label("cluster.delivery.release", &c.delivery.release);
    if !c
        .delivery
        .chart_version
        .starts_with(super::chart::CHART_VERSIONS)
    {
        p.add(
            "cluster.delivery.chart_version",
            format!(
                "the Helm values are built and checked against SigNoz chart {}x (its keys and collector pipelines), got {:?}",
                super::chart::CHART_VERSIONS, c.delivery.chart_version
            ),
        );
    }
    match c.delivery.method {
        DeliveryMethod::Argocd => match &c.delivery.argocd {
            None => p.add("cluster.delivery.argocd", "required when method is argocd"),
            Some(a) => {
                p.dns_subdomain("cluster.delivery.argocd.application", &a.application);
                p.dns_label("cluster.delivery.argocd.namespace", &a.namespace);
                p.non_empty("cluster.delivery.argocd.project", &a.project);
                p.http_url("cluster.delivery.argocd.repo_url", &a.repo_url);
                match (&a.destination_server, &a.destination_name) {
                    // ArgoCD refuses an Application naming its destination both ways.
                    (Some(_), Some(_)) => p.add(
                        "cluster.delivery.argocd.destination_name",
                        "give destination_server or destination_name, not both",
                    ),
                    (Some(server), None) => {
                        p.http_url("cluster.delivery.argocd.destination_server", server);
                    }
                    (None, Some(name)) => {
                        p.non_empty("cluster.delivery.argocd.destination_name", name)
                    }
                    (None, None) => {}
                }
            }
        },
        DeliveryMethod::Flux => match &c.delivery.flux {
            None => p.add("cluster.delivery.flux", "required when method is flux"),
            Some(f) => {
                p.dns_label("cluster.delivery.flux.namespace", &f.namespace);
                p.one_of(
                    "cluster.delivery.flux.source_kind",
                    &f.source_kind,
                    &FLUX_SOURCE_KINDS,
                );
                p.dns_subdomain("cluster.delivery.flux.source_name", &f.source_name);
                p.dns_subdomain(
                    "cluster.delivery.flux.values_configmap",
                    &f.values_configmap,
                );
            }
        },
    }
    if let Some(r) = &c.delivery.replaces {
        let parts: Vec<&str> = r.object.split('/').collect();
        if parts.len() != 3
            || !DELIVERY_KINDS.contains(&parts[0])
            || parts[1].is_empty()
            || parts[2].is_empty()
        {
            p.add(
                "cluster.delivery.replaces.object",
                format!("must be Application/<namespace>/<name> or HelmRelease/<namespace>/<name>, got {:?}", r.object),
            );
        }
        p.dns_label("cluster.delivery.replaces.release", &r.release);
    }
    if let Some(i) = &c.ingress {
        p.dns_subdomain("cluster.ingress.host", &i.host);
        match i.scheme.as_str() {
            "internal" => {}
            "internet-facing" if i.allow_internet_facing => {}
            "internet-facing" => p.add(
                "cluster.ingress.scheme",
                "internet-facing exposes SigNoz and its admin API to the internet: set allow_internet_facing: true to mean it",
            ),
            other => p.add(
                "cluster.ingress.scheme",
                format!("must be internal or internet-facing, got {other:?}"),
            ),
        }
        // AWS Load Balancer Controller, IngressGroup: at most 63 of [a-z0-9.-], starting
        // and ending with a letter or digit; order between -1000 and 1000.
        let g = &i.group_name;
        let group_ok = (1..=63).contains(&g.len())
            && g.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && g.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && g.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
        if !group_ok {
            p.add(
                "cluster.ingress.group_name",
                format!("must be an ALB group name (at most 63 of a-z, 0-9, '-', '.', starting and ending with a letter or digit), got {g:?}"),
            );
        }
        if let Some(order) = i.group_order
            && !(-1000..=1000).contains(&order)
        {
            p.add(
                "cluster.ingress.group_order",
                format!("must be between -1000 and 1000, got {order}"),
            );
        }
        p.arn(
            "cluster.ingress.certificate_arn",
            &i.certificate_arn,
            "acm",
            "certificate/",
        );
        if !i.health_check_path.starts_with('/') {
            p.add(
                "cluster.ingress.health_check_path",
                format!(
                    "must be a path starting with '/', got {:?}",
                    i.health_check_path
                ),
            );
        }
        p.non_empty("cluster.ingress.class_name", &i.class_name);
    }
}

fn validate_database(p: &mut Problems, d: &Database) {
    p.non_empty("database.instance_identifier", &d.instance_identifier);
    p.pg_identifier("database.database_name", &d.database_name);
    p.arn(
        "database.master_secret_arn",
        &d.master_secret_arn,
        "secretsmanager",
        "secret:",
    );
    p.non_empty("database.app_secret_name", &d.app_secret_name);
    p.pg_identifier("database.username", &d.username);
    p.pg_identifier("database.owner_role", &d.owner_role);
    if d.username == d.owner_role {
        p.add(
            "database.owner_role",
            format!("must differ from database.username ({:?})", d.username),
        );
    }
    if d.strategy == RotationStrategy::AlternatingUsers && d.username.len() + "_clone".len() > 63 {
        p.add(
            "database.username",
            format!(
                "must leave room for the \"_clone\" suffix of alternating users (at most 57 characters), got {} characters",
                d.username.len()
            ),
        );
    }
    // Secrets Manager's AutomaticallyAfterDays range.
    p.range("database.rotation_days", d.rotation_days, 1, 1000);
    // Up to 4096, as Secrets Manager's GetRandomPassword; below 20 is too weak for a login.
    p.range("database.password_length", d.password_length, 20, 4096);
    if let Some(ca) = &d.tls.ca_file {
        p.non_empty("database.tls.ca_file", ca);
    }
    for (path, name) in [
        ("database.username", d.username.as_str()),
        ("database.owner_role", d.owner_role.as_str()),
    ] {
        if crate::credentials::access::reserved_role_name(name) {
            p.add(
                path,
                format!(
                    "{name:?} is a privileged or reserved role name (postgres, pg_*, rds*, admin, master, root): SigNoz needs its own roles"
                ),
            );
        }
    }
    p.dns_subdomain("database.kubernetes_secret.name", &d.kubernetes_secret.name);
    let secret = &d.kubernetes_secret;
    for (path, key) in [
        ("database.kubernetes_secret.dsn_key", &secret.dsn_key),
        ("database.kubernetes_secret.ca_key", &secret.ca_key),
    ] {
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            p.add(
                path,
                format!("must be a valid Secret key ([-._a-zA-Z0-9]+), got {key:?}"),
            );
        }
    }
    if secret.ca_key == secret.dsn_key || secret.ca_key == "SIGNOZ_SQLSTORE_PROVIDER" {
        p.add(
            "database.kubernetes_secret.ca_key",
            format!(
                "must differ from the Secret's other keys, got {:?}",
                secret.ca_key
            ),
        );
    }
    let mount = &secret.ca_mount_path;
    if !mount.starts_with('/') || mount.contains(':') || mount.split('/').any(|c| c == "..") {
        p.add(
            "database.kubernetes_secret.ca_mount_path",
            format!("must be an absolute path without \"..\" or \":\", got {mount:?}"),
        );
    }
    for (i, w) in d.restart.iter().enumerate() {
        validate_workload_ref(
            p,
            &format!("database.restart[{i}]"),
            &w.kind,
            &w.name,
            w.namespace.as_deref(),
        );
    }
}

fn validate_workload_ref(p: &mut Problems, path: &str, kind: &str, name: &str, ns: Option<&str>) {
    if !WORKLOAD_KINDS.contains(&kind) {
        p.add(
            format!("{path}.kind"),
            format!(
                "must name the workload kind (Deployment, StatefulSet or DaemonSet), got {kind:?}"
            ),
        );
    }
    p.dns_subdomain(&format!("{path}.name"), name);
    if let Some(ns) = ns {
        p.dns_label(&format!("{path}.namespace"), ns);
    }
}

fn signals(r: &Retention) -> [(&'static str, &SignalRetention); 3] {
    [
        ("traces", &r.traces),
        ("logs", &r.logs),
        ("metrics", &r.metrics),
    ]
}

fn validate_retention(p: &mut Problems, r: &Retention) {
    for (signal, s) in signals(r) {
        if s.total_days == 0 {
            p.add(
                format!("retention.{signal}.total_days"),
                "must be at least 1, got 0",
            );
        }
        if s.hot_days == 0 {
            p.add(
                format!("retention.{signal}.hot_days"),
                "must be at least 1 (SigNoz needs toColdDuration > 0), got 0",
            );
        } else if s.hot_days >= s.total_days {
            p.add(
                format!("retention.{signal}.hot_days"),
                format!(
                    "must be less than total_days ({}), got {}",
                    s.total_days, s.hot_days
                ),
            );
        }
    }
    if r.safety_margin_days < MIN_SAFETY_MARGIN_DAYS {
        p.add(
            "retention.safety_margin_days",
            format!(
                "must be at least {MIN_SAFETY_MARGIN_DAYS}: ClickHouse drops parts in TTL merges that run at most every 4 hours and a part holds up to a day of rows, got {}",
                r.safety_margin_days
            ),
        );
    }
    if let Some(url) = p.http_url("retention.ttl_api.url", &r.ttl_api.url) {
        validate_keyed_url(p, "retention.ttl_api.url", &url);
    }
    p.non_empty(
        "retention.ttl_api.api_key_secret",
        &r.ttl_api.api_key_secret,
    );
    p.range(
        "retention.ttl_api.stuck_after_minutes",
        r.ttl_api.stuck_after_minutes,
        5,
        10_080,
    );
}

/// A URL the functions send a secret to (SigNoz's admin API key): HTTPS, at an address a
/// Lambda in the VPC resolves. Cluster DNS (`*.svc`, `*.cluster.local`) resolves only
/// inside the cluster; plain HTTP is allowed to a loopback address only (local runs).
fn validate_keyed_url(p: &mut Problems, path: &str, url: &url::Url) {
    let host = url.host_str().unwrap_or_default().trim_end_matches('.');
    let cluster_internal = host.ends_with(".svc")
        || host.ends_with(".cluster.local")
        || host == "cluster.local"
        || (!host.contains('.') && !host.contains(':') && host != "localhost");
    if cluster_internal {
        p.add(
            path,
            format!(
                "{host} is a cluster-internal name a Lambda in the VPC cannot resolve: use the \
                 HTTPS address of the internal load balancer in front of SigNoz"
            ),
        );
    }
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if url.scheme() != "https" && !loopback {
        p.add(
            path,
            format!(
                "must be https: the request carries SigNoz's admin API key (plain http only \
                 to a loopback address), got {url}"
            ),
        );
    }
}

/// The longest time any signal keeps a part in S3, and which signal sets it.
pub fn longest_cold_days(r: &Retention) -> (&'static str, SignalRetention) {
    signals(r)
        .into_iter()
        .max_by_key(|(_, s)| s.cold_days())
        .map(|(name, s)| (name, *s))
        .expect("three signals")
}

fn validate_cold_storage(p: &mut Problems, c: &ColdStorage, r: &Retention) {
    p.bucket_name("cold_storage.bucket", &c.bucket);
    if c.prefix.starts_with('/') {
        p.add(
            "cold_storage.prefix",
            format!("must not start with '/', got {:?}", c.prefix),
        );
    }
    for (class, days) in &c.transitions {
        let path = format!("cold_storage.transitions.{class}");
        match class.as_str() {
            "GLACIER" | "DEEP_ARCHIVE" => p.add(
                path,
                format!(
                    "storage class {class} needs a restore before reads; ClickHouse reads its S3 disk directly and fails with InvalidObjectState: use STANDARD_IA or GLACIER_IR"
                ),
            ),
            "STANDARD_IA" if *days < MIN_STANDARD_IA_DAYS => p.add(
                path,
                format!("S3 refuses a transition to STANDARD_IA before {MIN_STANDARD_IA_DAYS} days, got {days}"),
            ),
            "STANDARD_IA" | "GLACIER_IR" => {}
            _ => p.add(
                path,
                format!("unsupported storage class {class:?}: expected STANDARD_IA or GLACIER_IR"),
            ),
        }
    }
    if let (Some(ia), Some(gir)) = (
        c.transitions.get("STANDARD_IA"),
        c.transitions.get("GLACIER_IR"),
    ) && *gir < ia + MIN_DAYS_IN_STANDARD_IA
    {
        p.add(
            "cold_storage.transitions.GLACIER_IR",
            format!(
                "must be at least {MIN_DAYS_IN_STANDARD_IA} days after STANDARD_IA ({ia}), got {gir}"
            ),
        );
    }
    if let Some((class, last)) = c.transitions.iter().max_by_key(|(_, d)| **d)
        && c.expiration_days <= *last
    {
        p.add(
            "cold_storage.expiration_days",
            format!(
                "must come after the last transition ({class} at {last} days), got {}",
                c.expiration_days
            ),
        );
    }
    let (signal, longest) = longest_cold_days(r);
    let needed = longest.cold_days() + r.safety_margin_days;
    if c.expiration_days < needed {
        p.add(
            "cold_storage.expiration_days",
            format!(
                "would delete objects ClickHouse still references: must be at least retention.{signal} cold days ({} - {} = {}) plus retention.safety_margin_days ({}) = {needed}, got {}",
                longest.total_days,
                longest.hot_days,
                longest.cold_days(),
                r.safety_margin_days,
                c.expiration_days
            ),
        );
    }
    p.range(
        "cold_storage.abort_incomplete_multipart_days",
        c.abort_incomplete_multipart_days,
        1,
        365,
    );
    p.range(
        "cold_storage.noncurrent_expiration_days",
        c.noncurrent_expiration_days,
        1,
        3650,
    );
    validate_encryption(p, &c.encryption);
    p.arn(
        "cold_storage.clickhouse_role_arn",
        &c.clickhouse_role_arn,
        "iam",
        "role/",
    );
    if let Some(cost) = &c.cost {
        validate_cost(p, cost);
    }
}

/// Whether a [`KmsKeyRef`] names a key or an alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KmsKeyKind {
    Key,
    Alias,
}

/// A KMS key as S3's `KMSMasterKeyID` takes it: a key ID, a key ARN, `alias/<name>`, or
/// an alias ARN; region and account only when it is an ARN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KmsKeyRef<'a> {
    pub kind: KmsKeyKind,
    pub name: &'a str,
    pub region: Option<&'a str>,
    pub account: Option<&'a str>,
}

impl KmsKeyRef<'_> {
    /// Whether both name the same key: same kind and name, and the same region and
    /// account where both say (S3 may read `alias/x` back as the alias's ARN).
    pub fn same_key(&self, other: &KmsKeyRef<'_>) -> bool {
        let agree = |a: Option<&str>, b: Option<&str>| a.zip(b).is_none_or(|(a, b)| a == b);
        self.kind == other.kind
            && self.name == other.name
            && agree(self.region, other.region)
            && agree(self.account, other.account)
    }
}

/// Parses a KMS key reference; `None` when it is none of the four forms.
pub fn parse_kms_key(value: &str) -> Option<KmsKeyRef<'_>> {
    let name_ok = |n: &str, slash: bool| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b) || (slash && b == b'/'))
    };
    let (resource, region, account) = match value.strip_prefix("arn:") {
        Some(rest) => {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            if parts.len() != 5 || !parts[0].starts_with("aws") || parts[1] != "kms" {
                return None;
            }
            (parts[4], Some(parts[2]), Some(parts[3]))
        }
        None => (value, None, None),
    };
    let (kind, name) = match (region.is_some(), resource.split_once('/')) {
        (_, Some(("alias", name))) if name_ok(name, true) => (KmsKeyKind::Alias, name),
        (true, Some(("key", id))) if name_ok(id, false) => (KmsKeyKind::Key, id),
        (false, None) if name_ok(resource, false) => (KmsKeyKind::Key, resource),
        _ => return None,
    };
    Some(KmsKeyRef {
        kind,
        name,
        region,
        account,
    })
}

fn validate_encryption(p: &mut Problems, e: &Encryption) {
    match (e.algorithm, &e.kms_key_id) {
        (EncryptionAlgorithm::AwsKms, None) => p.add(
            "cold_storage.encryption.kms_key_id",
            "required when algorithm is aws:kms",
        ),
        (EncryptionAlgorithm::AwsKms, Some(k)) if parse_kms_key(k).is_none() => p.add(
            "cold_storage.encryption.kms_key_id",
            format!("must be a KMS key ID, key ARN, alias/<name> or alias ARN, got {k:?}"),
        ),
        (EncryptionAlgorithm::Aes256, Some(_)) => p.add(
            "cold_storage.encryption.kms_key_id",
            "only allowed when algorithm is aws:kms",
        ),
        _ => {}
    }
    if e.algorithm == EncryptionAlgorithm::Aes256 && e.bucket_key_enabled.is_some() {
        p.add(
            "cold_storage.encryption.bucket_key_enabled",
            "only allowed when algorithm is aws:kms (S3 Bucket Keys reduce KMS calls)",
        );
    }
}

fn validate_cost(p: &mut Problems, cost: &CostModel) {
    let d = &cost.daily_ingest_gb;
    for (field, v) in [
        ("daily_ingest_gb.traces", d.traces),
        ("daily_ingest_gb.logs", d.logs),
        ("daily_ingest_gb.metrics", d.metrics),
        ("standard_gb_month", cost.standard_gb_month),
        ("standard_ia_gb_month", cost.standard_ia_gb_month),
        ("glacier_ir_gb_month", cost.glacier_ir_gb_month),
        (
            "standard_ia_transition_per_1000",
            cost.standard_ia_transition_per_1000,
        ),
        (
            "glacier_ir_transition_per_1000",
            cost.glacier_ir_transition_per_1000,
        ),
        ("standard_ia_retrieval_gb", cost.standard_ia_retrieval_gb),
        ("glacier_ir_retrieval_gb", cost.glacier_ir_retrieval_gb),
    ] {
        if !v.is_finite() || v < 0.0 {
            p.add(
                format!("cold_storage.cost.{field}"),
                format!("must be a non-negative number, got {v}"),
            );
        }
    }
    if !(cost.average_object_kb.is_finite() && cost.average_object_kb > 0.0) {
        p.add(
            "cold_storage.cost.average_object_kb",
            format!("must be a positive number, got {}", cost.average_object_kb),
        );
    }
    for (field, v) in [
        ("small_object_share", cost.small_object_share),
        ("queried_share", Some(cost.queried_share)),
    ] {
        if let Some(v) = v
            && !(0.0..=1.0).contains(&v)
        {
            p.add(
                format!("cold_storage.cost.{field}"),
                format!("must be a share between 0 and 1, got {v}"),
            );
        }
    }
}

/// The state documents must not sit where the cold bucket's lifecycle (expiration,
/// noncurrent cleanup) would delete them.
fn validate_state_location(p: &mut Problems, spec: &PlatformSpec) {
    let (state, cold) = (&spec.state, &spec.cold_storage);
    if state.bucket == cold.bucket
        && (state.prefix.starts_with(&cold.prefix) || cold.prefix.starts_with(&state.prefix))
    {
        p.add(
            "state.prefix",
            format!(
                "must not overlap cold_storage.prefix ({:?}) in the same bucket: the cold lifecycle would expire the state documents, got {:?}",
                cold.prefix, state.prefix
            ),
        );
    }
}

fn validate_collectors(p: &mut Problems, c: &Collectors) {
    if c.min_replicas < 1 {
        p.add(
            "collectors.min_replicas",
            "must be at least 1 (collectors at zero drop telemetry), got 0",
        );
    }
    if c.max_replicas < c.min_replicas {
        p.add(
            "collectors.max_replicas",
            format!(
                "must be at least min_replicas ({}), got {}",
                c.min_replicas, c.max_replicas
            ),
        );
    }
    let s = &c.scaling;
    p.http_url(
        "collectors.scaling.prometheus_address",
        &s.prometheus_address,
    );
    p.non_empty("collectors.scaling.query", &s.query);
    if !(s.threshold.is_finite() && s.threshold > 0.0) {
        p.add(
            "collectors.scaling.threshold",
            format!("must be a positive number, got {}", s.threshold),
        );
    }
    if !(s.activation_threshold.is_finite() && s.activation_threshold >= 0.0) {
        p.add(
            "collectors.scaling.activation_threshold",
            format!(
                "must be a non-negative number, got {}",
                s.activation_threshold
            ),
        );
    }
    if !(c.min_replicas..=c.max_replicas).contains(&s.fallback_replicas) {
        p.add(
            "collectors.scaling.fallback_replicas",
            format!(
                "must be between min_replicas ({}) and max_replicas ({}), got {}",
                c.min_replicas, c.max_replicas, s.fallback_replicas
            ),
        );
    }
    p.range(
        "collectors.scaling.polling_interval_seconds",
        s.polling_interval_seconds,
        1,
        3600,
    );
    for (dir, b) in [("scale_up", &s.scale_up), ("scale_down", &s.scale_down)] {
        // The HPA API's own limits.
        p.range(
            &format!("collectors.scaling.{dir}.stabilization_window_seconds"),
            b.stabilization_window_seconds,
            0,
            3600,
        );
        p.range(
            &format!("collectors.scaling.{dir}.period_seconds"),
            b.period_seconds,
            1,
            1800,
        );
        p.range(
            &format!("collectors.scaling.{dir}.percent"),
            b.percent,
            1,
            1000,
        );
    }
    let m = &c.memory_limiter;
    if m.limit_mib == 0 {
        p.add(
            "collectors.memory_limiter.limit_mib",
            "must be at least 1, got 0",
        );
    }
    if m.spike_limit_mib >= m.limit_mib {
        p.add(
            "collectors.memory_limiter.spike_limit_mib",
            format!(
                "must be less than limit_mib ({}), got {}",
                m.limit_mib, m.spike_limit_mib
            ),
        );
    }
    p.duration(
        "collectors.memory_limiter.check_interval",
        &m.check_interval,
    );
    p.duration("collectors.batch.timeout", &c.batch.timeout);
    if c.batch.send_batch_size == 0 {
        p.add(
            "collectors.batch.send_batch_size",
            "must be at least 1, got 0",
        );
    }
    if c.batch.send_batch_max_size != 0 && c.batch.send_batch_max_size < c.batch.send_batch_size {
        p.add(
            "collectors.batch.send_batch_max_size",
            format!(
                "must be 0 (no limit) or at least send_batch_size ({}), got {}",
                c.batch.send_batch_size, c.batch.send_batch_max_size
            ),
        );
    }
    p.range("collectors.spot.weight", c.spot.weight, 1, 100);
    let mut jobs = BTreeSet::new();
    for (i, t) in c.infra_targets.iter().enumerate() {
        let path = format!("collectors.infra_targets[{i}]");
        p.dns_subdomain(&format!("{path}.job"), &t.job);
        if !jobs.insert(t.job.as_str()) {
            p.add(format!("{path}.job"), format!("duplicate job {:?}", t.job));
        }
        let port_ok = t.address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|n| n > 0)
        });
        if !port_ok {
            p.add(
                format!("{path}.address"),
                format!("must be host:port, got {:?}", t.address),
            );
        }
        if !t.path.starts_with('/') {
            p.add(
                format!("{path}.path"),
                format!("must start with '/', got {:?}", t.path),
            );
        }
        p.duration(&format!("{path}.interval"), &t.interval);
    }
}

fn validate_instrumentation(p: &mut Problems, spec: &PlatformSpec) {
    let i = &spec.instrumentation;
    p.dns_subdomain("instrumentation.name", &i.name);
    if let Some(endpoint) = &i.endpoint
        && let Some(url) = p.http_url("instrumentation.endpoint", endpoint)
    {
        if url.port_or_known_default() != Some(OTLP_HTTP_PORT) {
            p.add(
                "instrumentation.endpoint",
                format!(
                    "the Python injector speaks OTLP over HTTP on port {OTLP_HTTP_PORT}, got {endpoint:?}"
                ),
            );
        }
        // A collector Service of this release, typed by hand: it must be the chart's name.
        let host = url.host_str().unwrap_or_default();
        let derived = super::chart::collector_deployment(spec);
        let mut labels = host.split('.');
        if let (Some(service), Some(namespace), Some("svc")) =
            (labels.next(), labels.next(), labels.next())
            && namespace == spec.cluster.namespace
            && service.ends_with("otel-collector")
            && service != derived
        {
            p.add(
                "instrumentation.endpoint",
                format!(
                    "the chart names release {:?}'s collector Service {derived:?}, got {service:?} (omit endpoint to use it)",
                    spec.cluster.delivery.release
                ),
            );
        }
    }
    if let Some(o) = &i.operator {
        p.dns_label("instrumentation.operator.release", &o.release);
        p.dns_label("instrumentation.operator.namespace", &o.namespace);
        p.non_empty("instrumentation.operator.chart_version", &o.chart_version);
        if o.replicas < 2 {
            p.add(
                "instrumentation.operator.replicas",
                format!(
                    "must be at least 2 so the injecting webhook survives a node rotation, got {}",
                    o.replicas
                ),
            );
        }
        match spec.cluster.delivery.method {
            DeliveryMethod::Argocd => {
                p.http_url("instrumentation.operator.repo_url", &o.repo_url);
            }
            DeliveryMethod::Flux => match &o.source_name {
                Some(name) => p.dns_subdomain("instrumentation.operator.source_name", name),
                None => p.add(
                    "instrumentation.operator.source_name",
                    "required with flux delivery: the HelmRepository of the operator's chart",
                ),
            },
        }
    }
    if i.propagators.is_empty() {
        p.add(
            "instrumentation.propagators",
            "must list at least one propagator",
        );
    }
    let mut seen = BTreeSet::new();
    for (n, prop) in i.propagators.iter().enumerate() {
        if !PROPAGATORS.contains(&prop.as_str()) {
            p.add(
                format!("instrumentation.propagators[{n}]"),
                format!(
                    "unknown propagator {prop:?}: expected one of {}",
                    PROPAGATORS.join(", ")
                ),
            );
        } else if !seen.insert(prop) {
            p.add(
                format!("instrumentation.propagators[{n}]"),
                format!("duplicate propagator {prop:?}"),
            );
        }
    }
    let kind = i.sampler.kind.as_str();
    if !SAMPLERS.contains(&kind) {
        p.add(
            "instrumentation.sampler.type",
            format!(
                "unknown sampler {kind:?}: expected one of {}",
                SAMPLERS.join(", ")
            ),
        );
    } else if kind.ends_with("traceidratio") {
        // The operator's webhook parses the argument as a float in [0, 1].
        match i.sampler.argument.as_deref() {
            None => p.add(
                "instrumentation.sampler.argument",
                format!("required for sampler {kind}: a ratio between 0 and 1"),
            ),
            Some(arg) => {
                if !arg.parse::<f64>().is_ok_and(|r| (0.0..=1.0).contains(&r)) {
                    p.add(
                        "instrumentation.sampler.argument",
                        format!("must be a ratio between 0 and 1, got {arg:?}"),
                    );
                }
            }
        }
    }
    p.non_empty("instrumentation.python_image", &i.python_image);
    let mut workloads = BTreeSet::new();
    for (n, w) in i.workloads.iter().enumerate() {
        let path = format!("instrumentation.workloads[{n}]");
        validate_workload_ref(p, &path, &w.kind, &w.name, w.namespace.as_deref());
        p.non_empty(&format!("{path}.service_name"), &w.service_name);
        if !workloads.insert((&w.kind, &w.namespace, &w.name)) {
            p.add(
                format!("{path}.name"),
                format!("{} {:?} is listed twice", w.kind, w.name),
            );
        }
    }
}

fn validate_alarms(p: &mut Problems, spec: &PlatformSpec) {
    let mut names = BTreeSet::new();
    let min_hot = signals(&spec.retention)
        .iter()
        .map(|(_, s)| s.hot_days)
        .min()
        .unwrap_or(0);
    for (n, policy) in spec.alarms.policies.iter().enumerate() {
        let path = format!("alarms.policies[{n}]");
        p.non_empty(&format!("{path}.name"), &policy.name);
        if !names.insert(policy.name.as_str()) {
            p.add(
                format!("{path}.name"),
                format!("duplicate policy {:?}", policy.name),
            );
        }
        if policy.alarm.trim_end_matches('*').is_empty() {
            p.add(
                format!("{path}.alarm"),
                "must name an alarm or a prefix followed by '*'",
            );
        }
        p.range(
            &format!("{path}.cooldown_minutes"),
            policy.cooldown_minutes,
            0,
            1440,
        );
        match &policy.action {
            AlarmAction::ScaleCollectors(ScaleCollectors { step, ceiling, .. }) => {
                if *step == 0 {
                    p.add(
                        format!("{path}.action.scale_collectors.step"),
                        "must be at least 1, got 0",
                    );
                }
                if *ceiling < spec.collectors.max_replicas {
                    p.add(
                        format!("{path}.action.scale_collectors.ceiling"),
                        format!(
                            "must be at least collectors.max_replicas ({}), got {ceiling}",
                            spec.collectors.max_replicas
                        ),
                    );
                }
            }
            AlarmAction::MoveToColdSooner(MoveToColdSooner {
                step_days,
                floor_hot_days,
            }) => {
                if *step_days == 0 {
                    p.add(
                        format!("{path}.action.move_to_cold_sooner.step_days"),
                        "must be at least 1, got 0",
                    );
                }
                if *floor_hot_days == 0 || *floor_hot_days > min_hot {
                    p.add(
                        format!("{path}.action.move_to_cold_sooner.floor_hot_days"),
                        format!(
                            "must be between 1 and the smallest retention hot_days ({min_hot}), got {floor_hot_days}"
                        ),
                    );
                }
            }
            AlarmAction::ReconcileNow(_) | AlarmAction::RotateNow | AlarmAction::NotifyOnly => {}
        }
    }
}
