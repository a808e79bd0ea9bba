//! The deployment code against the code it deploys (issue 8): every function gets a
//! trigger for each event kind it handles and no other, and exactly the IAM actions its
//! code calls. Reads `infra/sam/template.yaml` (SAM), the Terraform module's
//! `functions.json` (the facts Terraform deploys) and the Rust sources; needs no stack.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use signoz_control::events::{self, TriggerKind};
use signoz_control::{alarms, cluster, cold_storage, credentials};

/// Each function: its name, the kinds it handles and its module's directory under shared/src.
const FUNCTIONS: [(&str, &[TriggerKind], &str); 4] = [
    (credentials::FUNCTION, credentials::HANDLES, "credentials"),
    (
        cold_storage::FUNCTION,
        cold_storage::HANDLES,
        "cold_storage",
    ),
    (cluster::FUNCTION, cluster::HANDLES, "cluster"),
    (alarms::FUNCTION, alarms::HANDLES, "alarms"),
];

/// AWS SDK operations (the fluent builder's method) and the IAM action each one needs.
/// Operations needing no permission (STS `GetCallerIdentity`, presigned for the EKS token)
/// are absent on purpose. Several names differ from the action: the table is the truth.
const SDK_OPERATIONS: &[(&str, &str)] = &[
    ("get_object", "s3:GetObject"),
    ("head_object", "s3:GetObject"),
    ("put_object", "s3:PutObject"),
    ("delete_object", "s3:DeleteObject"),
    ("list_objects_v2", "s3:ListBucket"),
    ("head_bucket", "s3:ListBucket"),
    ("get_bucket_location", "s3:GetBucketLocation"),
    (
        "get_bucket_lifecycle_configuration",
        "s3:GetLifecycleConfiguration",
    ),
    (
        "put_bucket_lifecycle_configuration",
        "s3:PutLifecycleConfiguration",
    ),
    ("delete_bucket_lifecycle", "s3:PutLifecycleConfiguration"),
    ("get_bucket_encryption", "s3:GetEncryptionConfiguration"),
    ("put_bucket_encryption", "s3:PutEncryptionConfiguration"),
    ("delete_bucket_encryption", "s3:PutEncryptionConfiguration"),
    ("get_public_access_block", "s3:GetBucketPublicAccessBlock"),
    ("put_public_access_block", "s3:PutBucketPublicAccessBlock"),
    (
        "delete_public_access_block",
        "s3:PutBucketPublicAccessBlock",
    ),
    ("get_bucket_versioning", "s3:GetBucketVersioning"),
    ("put_bucket_versioning", "s3:PutBucketVersioning"),
    ("get_bucket_policy", "s3:GetBucketPolicy"),
    ("put_bucket_policy", "s3:PutBucketPolicy"),
    ("delete_bucket_policy", "s3:DeleteBucketPolicy"),
    ("get_bucket_policy_status", "s3:GetBucketPolicyStatus"),
    ("get_bucket_tagging", "s3:GetBucketTagging"),
    (
        "list_bucket_intelligent_tiering_configurations",
        "s3:GetIntelligentTieringConfiguration",
    ),
    ("get_secret_value", "secretsmanager:GetSecretValue"),
    ("put_secret_value", "secretsmanager:PutSecretValue"),
    ("describe_secret", "secretsmanager:DescribeSecret"),
    (
        "update_secret_version_stage",
        "secretsmanager:UpdateSecretVersionStage",
    ),
    ("create_secret", "secretsmanager:CreateSecret"),
    ("update_secret", "secretsmanager:UpdateSecret"),
    ("rotate_secret", "secretsmanager:RotateSecret"),
    // Secrets Manager invokes the rotation function with the caller's permission.
    ("rotate_secret", "lambda:InvokeFunction"),
    (
        "list_secret_version_ids",
        "secretsmanager:ListSecretVersionIds",
    ),
    ("describe_db_instances", "rds:DescribeDBInstances"),
    ("describe_db_parameters", "rds:DescribeDBParameters"),
    ("modify_db_instance", "rds:ModifyDBInstance"),
    ("describe_cluster", "eks:DescribeCluster"),
    ("describe_alarms", "cloudwatch:DescribeAlarms"),
    ("describe_alarm_history", "cloudwatch:DescribeAlarmHistory"),
    ("get_metric_data", "cloudwatch:GetMetricData"),
    ("put_metric_data", "cloudwatch:PutMetricData"),
    ("set_alarm_state", "cloudwatch:SetAlarmState"),
];

/// Methods that start a plain HTTP request (reqwest, for SigNoz's TTL API), not an AWS call.
const HTTP_REQUEST_METHODS: &[&str] = &[
    ".get(",
    ".post(",
    ".put(",
    ".patch(",
    ".delete(",
    ".request(",
];

/// Values for template parameters without a default: the names in `events/*.json`.
const SAMPLE_PARAMETERS: &[(&str, &str)] = &[
    ("ConfigBucket", "acme-signoz-config"),
    ("ColdBucket", "acme-signoz-cold"),
    ("DatabaseSecurityGroupId", "sg-0123456789abcdef0"),
    ("ClusterSecurityGroupId", "sg-0123456789abcdef1"),
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn sam_template() -> Value {
    let text = read(&repo_root().join("infra/sam/template.yaml"));
    serde_norway::from_str(&text).expect("template.yaml is plain YAML (long-form intrinsics)")
}

fn terraform_dir() -> PathBuf {
    repo_root().join("infra/terraform/modules/control-plane")
}

fn terraform_manifest() -> Value {
    serde_json::from_str(&read(&terraform_dir().join("functions.json")))
        .expect("functions.json is JSON")
}

fn kind_name(kind: TriggerKind) -> String {
    format!("{kind:?}")
}

fn handled(kinds: &[TriggerKind]) -> BTreeSet<String> {
    kinds.iter().copied().map(kind_name).collect()
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

// ---- the code side -------------------------------------------------------------------

/// The Rust files of a module plus everything it reaches through `crate::` paths,
/// transitively: `crate::spec::load_spec` brings in the whole `spec` module (spec/load.rs
/// reads the spec), `crate::credentials::dsn::signoz_dsn` only `credentials/dsn.rs`.
/// Unit-test files and `#[cfg(test)]` tails are left out: their calls set up fixtures.
fn sources_reached_from(module: &str) -> BTreeMap<PathBuf, String> {
    let src = repo_root().join("shared/src");
    let mut files = BTreeMap::new();
    let mut pending = vec![vec![module.to_string()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = pending.pop() {
        let Some(target) = resolve_crate_path(&src, &path) else {
            continue;
        };
        if !seen.insert(target.clone()) {
            continue;
        }
        let mut module_files = Vec::new();
        if target.is_dir() {
            collect_rust_files(&target, &mut module_files);
        } else {
            module_files.push(target);
        }
        for file in module_files {
            let text = production_code(&read(&file));
            pending.extend(crate_paths_named_in(&text));
            files.insert(file, text);
        }
    }
    files
}

/// The deepest file or module directory a `crate::a::b::c` path names.
fn resolve_crate_path(src: &Path, segments: &[String]) -> Option<PathBuf> {
    let mut found = None;
    let mut dir = src.to_path_buf();
    for segment in segments {
        let file = dir.join(format!("{segment}.rs"));
        let sub = dir.join(segment);
        if sub.is_dir() {
            found = Some(sub.clone());
            dir = sub;
        } else if file.is_file() {
            return Some(file);
        } else {
            break;
        }
    }
    found
}

/// The module paths after `crate::`, including grouped imports `crate::{a, b::c}`.
fn crate_paths_named_in(text: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        let items: Vec<&str> = match rest.strip_prefix('{') {
            Some(inner) => inner[..inner.find('}').unwrap_or(inner.len())]
                .split(',')
                .collect(),
            None => vec![rest],
        };
        for item in items {
            let path: String = item
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let segments: Vec<String> = path
                .split("::")
                .take_while(|s| s.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
                .map(str::to_string)
                .collect();
            if !segments.is_empty() {
                paths.push(segments);
            }
        }
    }
    paths
}

fn collect_rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            collect_rust_files(&path, out);
        } else if name.ends_with(".rs") && name != "tests.rs" && !name.ends_with("_tests.rs") {
            out.push(path);
        }
    }
}

fn production_code(text: &str) -> String {
    match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => text[..at].to_string(),
        None => text.to_string(),
    }
}

/// The IAM actions a module's code needs, from the SDK operations it calls. Panics on an
/// AWS call (`.send()`) whose operation the table does not know, so a new call cannot slip
/// past the check.
fn actions_called_by(module: &str) -> BTreeMap<String, Vec<String>> {
    let mut actions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut unknown = Vec::new();
    for (path, text) in sources_reached_from(module) {
        let short = path
            .strip_prefix(repo_root())
            .unwrap_or(&path)
            .display()
            .to_string();
        for (operation, action) in SDK_OPERATIONS {
            if text.contains(&format!(".{operation}(")) {
                actions
                    .entry((*action).to_string())
                    .or_default()
                    .push(format!("{short}: {operation}"));
            }
        }
        for (at, _) in text.match_indices(".send()") {
            // The builder may be bound in an earlier statement (`let request = ...;`):
            // look back a few statements, not just to the last `;`.
            let start = text[..at]
                .char_indices()
                .rev()
                .filter(|(_, c)| *c == ';')
                .nth(2)
                .map_or(0, |(s, _)| s + 1);
            let call = &text[start..at];
            let known = SDK_OPERATIONS
                .iter()
                .any(|(op, _)| call.contains(&format!(".{op}(")));
            let http = HTTP_REQUEST_METHODS.iter().any(|m| call.contains(m));
            if !known && !http {
                unknown.push(format!("{short}: {}", call.trim()));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "{module} makes AWS calls the SDK_OPERATIONS table does not map to IAM actions:\n{}",
        unknown.join("\n")
    );
    actions
}

/// The drift event names the cold-storage code treats as drift: the string list in its
/// sources that holds `PutBucketLifecycle`.
fn drift_event_names_in_code() -> Option<BTreeSet<String>> {
    for (_, text) in sources_reached_from("cold_storage") {
        let Some(at) = text.find("\"PutBucketLifecycle\"") else {
            continue;
        };
        let open = text[..at].rfind('[')?;
        let close = at + text[at..].find(']')?;
        let names = text[open + 1..close]
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .filter(|s| !s.is_empty())
            .collect();
        return Some(names);
    }
    None
}

// ---- the SAM side --------------------------------------------------------------------

/// SAM functions by binary name: (logical id, resource).
fn sam_functions(template: &Value) -> BTreeMap<String, (String, Value)> {
    resources(template)
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(id, r)| {
            let binary = r["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{id} has Metadata.BuildProperties.Binary"))
                .to_string();
            (binary, (id.clone(), r.clone()))
        })
        .collect()
}

fn resources(template: &Value) -> impl Iterator<Item = (&String, &Value)> {
    template["Resources"].as_object().expect("Resources").iter()
}

/// Statement id -> actions of a SAM function's inline policies.
fn sam_statements(function: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for policy in function["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for statement in policy["Statement"].as_array().into_iter().flatten() {
            let sid = statement["Sid"]
                .as_str()
                .expect("every statement has a Sid");
            assert_eq!(statement["Effect"], "Allow", "{sid}");
            // Every statement names its resources (passwords are made in the function).
            assert_ne!(statement["Resource"], "*", "{sid}");
            out.insert(
                sid.to_string(),
                strings(&statement["Action"]).into_iter().collect(),
            );
        }
    }
    out
}

/// Replaces `{Ref: Param}` with the parameter's default or the sample events' name.
fn resolve_refs(value: &Value, template: &Value) -> Value {
    match value {
        Value::Object(map) if map.len() == 1 && map.contains_key("Ref") => {
            let name = map["Ref"].as_str().expect("Ref names a parameter");
            let default = &template["Parameters"][name]["Default"];
            if let Some(d) = default.as_str() {
                return Value::String(d.to_string());
            }
            let (_, sample) = SAMPLE_PARAMETERS
                .iter()
                .find(|(p, _)| *p == name)
                .unwrap_or_else(|| panic!("no sample value for parameter {name}"));
            Value::String((*sample).to_string())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), resolve_refs(v, template)))
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| resolve_refs(v, template)).collect())
        }
        other => other.clone(),
    }
}

/// EventBridge pattern matching for what the templates use: value lists and `prefix`.
fn pattern_matches(pattern: &Value, event: &Value) -> bool {
    let Some(fields) = pattern.as_object() else {
        return false;
    };
    fields.iter().all(|(key, wanted)| {
        let actual = &event[key];
        match wanted {
            Value::Object(_) => pattern_matches(wanted, actual),
            Value::Array(options) => {
                let candidates: Vec<&Value> = match actual {
                    Value::Array(items) => items.iter().collect(),
                    other => vec![other],
                };
                candidates.iter().any(|c| {
                    options.iter().any(|option| match option {
                        Value::Object(o) if o.contains_key("prefix") => c
                            .as_str()
                            .zip(o["prefix"].as_str())
                            .is_some_and(|(s, p)| s.starts_with(p)),
                        plain => plain == *c,
                    })
                })
            }
            _ => false,
        }
    })
}

/// The EventBridge-shaped sample payloads in `events/`, by file name.
fn eventbridge_samples() -> Vec<(String, Value)> {
    let mut samples: Vec<(String, Value)> = std::fs::read_dir(repo_root().join("events"))
        .expect("events/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (
                name,
                serde_json::from_str::<Value>(&read(&p)).expect("sample is JSON"),
            )
        })
        .filter(|(_, v)| v.get("detail-type").is_some())
        .collect();
    samples.sort_by(|a, b| a.0.cmp(&b.0));
    samples
}

/// Logical id of the function a `Fn::GetAtt: [X, Arn]` names.
fn get_att_target(value: &Value) -> Option<&str> {
    value["Fn::GetAtt"][0].as_str()
}

/// The trigger kinds the SAM template delivers to each function (by logical id), proven
/// by matching the sample events against the rules and decoding them with the real decoder.
fn sam_delivered_kinds(template: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let samples = eventbridge_samples();
    let mut delivered: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (binary, (id, function)) in sam_functions(template) {
        let kinds = delivered.entry(id.clone()).or_default();
        for (event_name, event) in function["Properties"]["Events"]
            .as_object()
            .into_iter()
            .flatten()
        {
            match event["Type"].as_str() {
                Some("Schedule") => {
                    kinds.insert(kind_name(TriggerKind::Schedule));
                }
                Some("EventBridgeRule") => {
                    let pattern = resolve_refs(&event["Properties"]["Pattern"], template);
                    let matched: Vec<&(String, Value)> = samples
                        .iter()
                        .filter(|(_, sample)| pattern_matches(&pattern, sample))
                        .collect();
                    assert!(
                        !matched.is_empty(),
                        "{binary}'s rule {event_name} matches no sample event in events/"
                    );
                    for (file, sample) in matched {
                        let trigger = events::decode_for(
                            leak(&binary),
                            handles_of(&binary),
                            sample.clone(),
                        )
                        .unwrap_or_else(|e| {
                            panic!("{binary}'s rule {event_name} delivers {file}, which it rejects: {e}")
                        });
                        kinds.insert(kind_name(trigger.kind()));
                    }
                }
                other => panic!("{binary}: unexpected event source type {other:?}"),
            }
        }
    }
    for (_, resource) in resources(template) {
        let target = match resource["Type"].as_str() {
            Some("AWS::SecretsManager::RotationSchedule") => {
                get_att_target(&resource["Properties"]["RotationLambdaARN"])
                    .map(|id| (id, TriggerKind::Rotation))
            }
            Some("AWS::Lambda::Permission")
                if resource["Properties"]["Principal"]
                    == "lambda.alarms.cloudwatch.amazonaws.com" =>
            {
                get_att_target(&resource["Properties"]["FunctionName"])
                    .map(|id| (id, TriggerKind::AlarmChange))
            }
            _ => None,
        };
        if let Some((id, kind)) = target {
            delivered
                .get_mut(id)
                .unwrap_or_else(|| panic!("{id} is not a function"))
                .insert(kind_name(kind));
        }
    }
    delivered
}

fn handles_of(binary: &str) -> &'static [TriggerKind] {
    FUNCTIONS
        .iter()
        .find(|(name, _, _)| *name == binary)
        .map(|(_, handles, _)| *handles)
        .unwrap_or_else(|| panic!("{binary} is not one of the four functions"))
}

fn leak(name: &str) -> &'static str {
    FUNCTIONS
        .iter()
        .map(|(n, _, _)| *n)
        .find(|n| *n == name)
        .expect("known function")
}

fn principal_permissions(template: &Value, principal: &str) -> BTreeSet<String> {
    resources(template)
        .filter(|(_, r)| {
            r["Type"] == "AWS::Lambda::Permission" && r["Properties"]["Principal"] == principal
        })
        .filter_map(|(_, r)| get_att_target(&r["Properties"]["FunctionName"]).map(str::to_string))
        .collect()
}

// ---- the tests -----------------------------------------------------------------------

#[test]
fn every_function_is_deployed_by_sam_and_terraform_as_a_rust_lambda_of_the_chosen_architecture() {
    let template = sam_template();
    let manifest = terraform_manifest();
    let sam = sam_functions(&template);
    let globals = &template["Globals"]["Function"];
    let expected: BTreeSet<&str> = FUNCTIONS.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(
        sam.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        expected
    );
    let in_terraform: BTreeSet<&str> = manifest["functions"]
        .as_object()
        .expect("functions")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(in_terraform, expected);

    for (binary, (id, function)) in &sam {
        let property = |name: &str| {
            let own = &function["Properties"][name];
            if own.is_null() {
                globals[name].clone()
            } else {
                own.clone()
            }
        };
        assert_eq!(property("Runtime"), "provided.al2023", "{id}");
        // One parameter, x86_64 by default (what CI builds), arm64 allowed.
        assert_eq!(
            property("Architectures"),
            serde_json::json!([{"Ref": "Architecture"}]),
            "{id}"
        );
        assert_eq!(property("Handler"), "bootstrap", "{id}");
        assert_eq!(
            function["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{id}"
        );
        // CodeUri at the workspace root: the layout cargo-lambda builds a workspace member from.
        let code_uri = property("CodeUri");
        let root = repo_root()
            .join("infra/sam")
            .join(code_uri.as_str().expect("CodeUri"));
        assert!(
            root.join("Cargo.toml").is_file(),
            "{id}: CodeUri is the workspace root"
        );
        assert!(
            root.join("functions")
                .join(binary)
                .join("Cargo.toml")
                .is_file(),
            "{id}"
        );
        assert_eq!(
            function["Properties"]["LoggingConfig"]["LogFormat"], "JSON",
            "{id}"
        );
        let log_group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{id} logs to a log group of this stack"));
        assert!(
            !template["Resources"][log_group]["Properties"]["RetentionInDays"].is_null(),
            "{log_group} has a retention"
        );
        assert!(
            !property("DeadLetterQueue").is_null(),
            "{id} keeps failed async events"
        );
        assert!(!property("VpcConfig").is_null(), "{id} runs in the VPC");
        assert_eq!(
            property("Environment")["Variables"]["PLATFORM_SPEC"]["Fn::Sub"],
            "s3://${ConfigBucket}/${SpecKey}",
            "{id}"
        );
    }
}

#[test]
fn every_function_has_a_trigger_for_each_kind_it_handles_and_no_other() {
    let template = sam_template();
    let manifest = terraform_manifest();
    let delivered = sam_delivered_kinds(&template);
    let sam = sam_functions(&template);
    for (name, handles, _) in FUNCTIONS {
        let (id, _) = &sam[name];
        assert_eq!(delivered[id], handled(handles), "SAM triggers of {name}");
        let in_terraform: BTreeSet<String> = strings(&manifest["functions"][name]["triggers"])
            .into_iter()
            .collect();
        assert_eq!(
            in_terraform,
            handled(handles),
            "Terraform triggers of {name}"
        );
    }
}

#[test]
fn rotation_and_alarm_actions_may_invoke_their_functions() {
    let template = sam_template();
    let sam = sam_functions(&template);
    let secrets_manager = principal_permissions(&template, "secretsmanager.amazonaws.com");
    let alarm_actions = principal_permissions(&template, "lambda.alarms.cloudwatch.amazonaws.com");
    for (name, handles, _) in FUNCTIONS {
        let (id, _) = &sam[name];
        assert_eq!(
            secrets_manager.contains(id),
            handles.contains(&TriggerKind::Rotation),
            "{name}: Secrets Manager may invoke exactly the rotation function"
        );
        assert_eq!(
            alarm_actions.contains(id),
            handles.contains(&TriggerKind::AlarmChange),
            "{name}: alarm actions may invoke exactly the alarm function"
        );
    }
    // Terraform builds a rule for each EventBridge kind from this map.
    let triggers_tf = read(&terraform_dir().join("triggers.tf"));
    for kind in [
        TriggerKind::SpecWritten,
        TriggerKind::BucketApiCall,
        TriggerKind::RdsInstance,
        TriggerKind::AlarmChange,
    ] {
        assert!(
            triggers_tf.contains(&format!("    {} = {{", kind_name(kind))),
            "triggers.tf has an event pattern for {kind}"
        );
    }
}

#[test]
fn control_requests_reach_only_the_function_that_acts_on_them() {
    let template = sam_template();
    let manifest = terraform_manifest();
    for (name, _, _) in FUNCTIONS {
        let (_, function) = &sam_functions(&template)[name];
        let in_sam: BTreeSet<String> = function["Properties"]["Events"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, e)| e["Properties"]["Pattern"]["source"][0] == events::CONTROL_SOURCE)
            .flat_map(|(_, e)| strings(&e["Properties"]["Pattern"]["detail-type"]))
            .collect();
        let in_terraform: BTreeSet<String> =
            strings(&manifest["functions"][name]["control_detail_types"])
                .into_iter()
                .collect();
        assert_eq!(in_sam, in_terraform, "{name}");
    }
    let detail_types = |name: &str| strings(&manifest["functions"][name]["control_detail_types"]);
    use events::ControlAction::*;
    assert_eq!(
        detail_types(credentials::FUNCTION),
        [ProvisionDatabase.detail_type()]
    );
    assert_eq!(
        detail_types(cold_storage::FUNCTION),
        [ReconcileColdStorage.detail_type()]
    );
    assert_eq!(detail_types(cluster::FUNCTION), [SyncCluster.detail_type()]);
}

#[test]
fn the_drift_rule_lists_the_event_names_the_code_treats_as_drift() {
    let template = sam_template();
    let manifest = terraform_manifest();
    let (_, function) = &sam_functions(&template)[cold_storage::FUNCTION];
    let in_sam: BTreeSet<String> = function["Properties"]["Events"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(_, e)| strings(&e["Properties"]["Pattern"]["detail"]["eventName"]))
        .collect();
    let in_terraform: BTreeSet<String> = strings(&manifest["drift_event_names"])
        .into_iter()
        .collect();
    assert_eq!(in_sam, in_terraform);
    let in_code = drift_event_names_in_code()
        .expect("shared/src/cold_storage lists the CloudTrail event names it treats as drift");
    assert_eq!(in_sam, in_code, "drift event names: template vs code");
}

#[test]
fn every_function_is_granted_exactly_the_iam_actions_its_code_calls() {
    let template = sam_template();
    let manifest = terraform_manifest();
    let sam = sam_functions(&template);
    let mut mismatches = Vec::new();
    for (name, _, module) in FUNCTIONS {
        let called = actions_called_by(module);
        let called_set: BTreeSet<String> = called.keys().cloned().collect();

        let (_, function) = &sam[name];
        let sam_statements = sam_statements(function);
        let granted: BTreeSet<String> = sam_statements.values().flatten().cloned().collect();

        let terraform_statements: BTreeMap<String, BTreeSet<String>> = manifest["functions"][name]
            ["statements"]
            .as_array()
            .expect("statements")
            .iter()
            .map(|s| {
                (
                    s["sid"].as_str().expect("sid").to_string(),
                    strings(&s["actions"]).into_iter().collect(),
                )
            })
            .collect();
        assert_eq!(
            sam_statements, terraform_statements,
            "{name}: SAM and Terraform grant the same statements"
        );

        for action in called_set.difference(&granted) {
            mismatches.push(format!(
                "{name} calls {action} but is not granted it ({})",
                called[action].join(", ")
            ));
        }
        for action in granted.difference(&called_set) {
            mismatches.push(format!(
                "{name} is granted {action} but its code never calls it"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "IAM vs code:\n{}",
        mismatches.join("\n")
    );
}

/// Each function that reaches the cluster gets an EKS access entry mapping its role to its
/// own Kubernetes group, the one the shipped RBAC binds (`permissions::kubernetes_group`),
/// and no EKS access policy (they cover built-in API groups only).
#[test]
fn exactly_the_functions_that_reach_the_cluster_get_an_eks_access_entry_to_their_group() {
    use signoz_control::cluster::permissions::{CLUSTER_FUNCTIONS, kubernetes_group};
    let template = sam_template();
    let manifest = terraform_manifest();
    let sam = sam_functions(&template);
    // The group with the platform's name left as IaC writes it.
    let mut spec = signoz_control::spec::parse_spec(signoz_control::spec::EXAMPLE_SPEC).unwrap();
    let mut group = |iac_name: &str, function: &str| {
        spec.platform.name = iac_name.into();
        kubernetes_group(&spec, function)
    };
    let entries: BTreeMap<String, Value> = resources(&template)
        .filter(|(_, r)| r["Type"] == "AWS::EKS::AccessEntry")
        .map(|(id, r)| {
            assert!(
                r["Properties"].get("AccessPolicies").is_none(),
                "{id}: no access policy"
            );
            let role = get_att_target(&r["Properties"]["PrincipalArn"])
                .expect("the principal is a function role")
                .trim_end_matches("Role")
                .to_string();
            (role, r["Properties"]["KubernetesGroups"].clone())
        })
        .collect();
    let iam_tf =
        std::fs::read_to_string(repo_root().join("infra/terraform/modules/control-plane/iam.tf"))
            .unwrap();
    assert!(
        iam_tf.contains(&format!(
            "kubernetes_groups = [\"{}\"]",
            group("${var.platform_name}", "${each.key}")
        )),
        "Terraform maps each role to its function's group"
    );
    assert!(
        !iam_tf.contains("aws_eks_access_policy_association"),
        "no EKS access policy"
    );
    for (name, _, module) in FUNCTIONS {
        let reaches_cluster = actions_called_by(module).contains_key("eks:DescribeCluster");
        assert_eq!(CLUSTER_FUNCTIONS.contains(&name), reaches_cluster, "{name}");
        let (id, _) = &sam[name];
        assert_eq!(
            entries.contains_key(id),
            reaches_cluster,
            "SAM access entry of {name}"
        );
        if reaches_cluster {
            assert_eq!(
                entries[id],
                serde_json::json!([{ "Fn::Sub": group("${PlatformName}", name) }]),
                "SAM group of {name}"
            );
        }
        assert_eq!(
            manifest["functions"][name]["cluster_access"].as_bool(),
            Some(reaches_cluster),
            "Terraform access entry of {name}"
        );
    }
}

#[test]
fn the_code_scanner_finds_calls_through_shared_helpers() {
    // The spec is read with s3:GetObject in spec/load.rs: a module using load_spec reaches it.
    let files = sources_reached_from("spec");
    assert!(files.keys().any(|p| p.ends_with("spec/load.rs")));
    assert_eq!(
        crate_paths_named_in("use crate::{spec::load_spec, state::State};\nuse crate::aws;"),
        [vec!["spec", "load_spec"], vec!["state"], vec!["aws"]]
    );
    let src = repo_root().join("shared/src");
    let dsn = ["credentials".to_string(), "dsn".into(), "signoz_dsn".into()];
    assert_eq!(
        resolve_crate_path(&src, &dsn),
        Some(src.join("credentials/dsn.rs"))
    );
    let sample =
        serde_json::json!({"source": "aws.s3", "detail": {"object": {"key": "platform.yaml"}}});
    assert!(pattern_matches(
        &serde_json::json!({"source": ["aws.s3"], "detail": {"object": {"key": [{"prefix": "plat"}]}}}),
        &sample
    ));
    assert!(!pattern_matches(
        &serde_json::json!({"source": ["aws.s3"], "detail": {"object": {"key": ["other.yaml"]}}}),
        &sample
    ));
}

/// The findings of issue 18 the templates carry: an EventBridge-writable dead-letter queue
/// with an alarm on its depth, rotation turned on only after what it needs exists and
/// never at once, the app secret owned by the deployment, ROTATION_LAMBDA_ARN set.
#[test]
fn the_dead_letter_queue_rotation_and_app_secret_are_deployable() {
    let template = sam_template();
    let r = &template["Resources"];
    let queue = &r["FailedInvocationsQueue"]["Properties"];
    assert_eq!(queue["SqsManagedSseEnabled"], true);
    assert!(
        queue["KmsMasterKeyId"].is_null(),
        "EventBridge cannot write under alias/aws/sqs"
    );
    assert_eq!(
        r["DeadLetterAlarm"]["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0],
        "FailedInvocationsQueue"
    );
    let schedule = &r["AppSecretRotationSchedule"];
    assert_eq!(schedule["Properties"]["RotateImmediatelyOnUpdate"], false);
    assert_eq!(schedule["Properties"]["SecretId"]["Ref"], "AppSecret");
    let depends: BTreeSet<String> = strings(&schedule["DependsOn"]).into_iter().collect();
    for needed in [
        "RotateCredentialsSecretsManagerPermission",
        "RotateCredentialsClusterAccess",
        "DatabaseFromFunctions",
        "ClusterFromFunctions",
    ] {
        assert!(depends.contains(needed), "rotation waits for {needed}");
    }
    assert_eq!(r["AppSecret"]["Type"], "AWS::SecretsManager::Secret");
    let (_, rotate) = &sam_functions(&template)[credentials::FUNCTION];
    assert_eq!(
        rotate["Properties"]["Environment"]["Variables"]["ROTATION_LAMBDA_ARN"]["Fn::Sub"],
        "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-rotate-credentials"
    );
    assert_eq!(
        rotate["Properties"]["FunctionName"]["Fn::Sub"], "${AWS::StackName}-rotate-credentials",
        "ROTATION_LAMBDA_ARN names this function"
    );
    for name in ["FindStateDocuments", "InvokeRotationFunction"] {
        assert!(
            sam_statements(rotate).contains_key(name),
            "rotate-credentials grants {name}"
        );
    }

    let terraform: String = ["main.tf", "triggers.tf", "network.tf"]
        .iter()
        .map(|f| read(&terraform_dir().join(f)))
        .collect();
    for needle in [
        "sqs_managed_sse_enabled   = true",
        "rotate_immediately  = false",
        "resource \"aws_cloudwatch_metric_alarm\" \"dead_letters\"",
        "resource \"aws_cloudwatch_metric_alarm\" \"function_errors\"",
        "ROTATION_LAMBDA_ARN = local.resource_arns.rotation_function[0]",
        "resource \"aws_secretsmanager_secret\" \"app\"",
        "endpoint_private_access",
        "aws_vpc_security_group_ingress_rule.database_from_functions",
    ] {
        assert!(terraform.contains(needle), "Terraform has {needle}");
    }
    assert!(!terraform.contains("kms_master_key_id"));
}

/// The cold bucket's lifecycle has one owner, enforce-cold-storage (its expiration follows
/// what SigNoz has ever held): the Terraform module declares no lifecycle, so a reconcile
/// and `terraform plan` never undo each other. What the module does declare for the
/// bucket is what the control plane writes for the same spec.
#[test]
fn terraform_leaves_the_cold_lifecycle_to_the_control_plane_and_agrees_on_the_rest() {
    for entry in std::fs::read_dir(terraform_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "tf") {
            assert!(
                !read(&path).contains("aws_s3_bucket_lifecycle_configuration"),
                "{} declares a lifecycle of its own",
                path.display()
            );
        }
    }
    let tf = read(&terraform_dir().join("cold_bucket.tf"));
    let setting = |name: &str| {
        tf.lines()
            .find_map(|l| {
                let (key, value) = l.split_once('=')?;
                (key.trim() == name).then(|| value.trim().to_string())
            })
            .unwrap_or_else(|| panic!("cold_bucket.tf sets no {name}"))
    };
    use signoz_control::cold_storage::plan::{
        ObservedBucket, PublicAccessBlock, RetentionHighWater, plan_bucket_posture,
    };
    let planned = |spec: &signoz_control::spec::PlatformSpec, resource: &str| {
        plan_bucket_posture(
            spec,
            &ObservedBucket::default(),
            &RetentionHighWater::default(),
        )
        .into_iter()
        .find(|c| c.resource == resource)
        .unwrap()
        .after
    };
    let mut spec = signoz_control::spec::parse_spec(signoz_control::spec::EXAMPLE_SPEC).unwrap();
    assert_eq!(
        planned(&spec, "public_access_block"),
        serde_json::json!(PublicAccessBlock::ALL_ON)
    );
    for name in [
        "block_public_acls",
        "ignore_public_acls",
        "block_public_policy",
        "restrict_public_buckets",
    ] {
        assert_eq!(setting(name), "true", "{name}");
    }
    // No key: AES256 without a bucket key; a key: aws:kms with the bucket key on.
    let aes = planned(&spec, "encryption");
    assert_eq!(
        (&aes["algorithm"], &aes["bucket_key_enabled"]),
        (&"AES256".into(), &false.into())
    );
    spec.cold_storage.encryption.algorithm = signoz_control::spec::EncryptionAlgorithm::AwsKms;
    spec.cold_storage.encryption.kms_key_id = Some("alias/signoz-cold".into());
    let kms = planned(&spec, "encryption");
    assert_eq!(
        (&kms["algorithm"], &kms["bucket_key_enabled"]),
        (&"aws:kms".into(), &true.into())
    );
    assert_eq!(
        setting("sse_algorithm"),
        r#"var.cold_bucket_kms_key_arn == null ? "AES256" : "aws:kms""#
    );
    assert_eq!(
        setting("bucket_key_enabled"),
        "var.cold_bucket_kms_key_arn == null ? null : true"
    );
    // Never enabled, so the control plane has nothing to suspend.
    assert_eq!(setting("status"), r#""Disabled""#);
}

/// Both deployments page on what stops the control plane converging: each function's
/// errors and throttles (AWS/Lambda, by FunctionName) and the dead-letter queue's depth,
/// alarming and clearing through the same topic.
#[test]
fn every_function_alarms_on_errors_and_throttles_and_the_dead_letters_on_depth() {
    let template = sam_template();
    let alarms: Vec<&Value> = resources(&template)
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|(_, r)| &r["Properties"])
        .collect();
    let alarm_on = |namespace: &str, metric: &str, dimension: &Value| {
        alarms.iter().copied().find(|a| {
            a["Namespace"] == namespace
                && a["MetricName"] == metric
                && a["Dimensions"][0]["Value"] == *dimension
        })
    };
    let functions = sam_functions(&template);
    assert_eq!(functions.len(), 4);
    for (binary, (id, _)) in &functions {
        for metric in ["Errors", "Throttles"] {
            let alarm = alarm_on("AWS/Lambda", metric, &json!({ "Ref": id }))
                .unwrap_or_else(|| panic!("SAM: no {metric} alarm for {binary}"));
            assert_eq!(alarm["Dimensions"][0]["Name"], "FunctionName");
            assert_eq!(
                (alarm["Statistic"].as_str(), alarm["Threshold"].as_i64()),
                (Some("Sum"), Some(0))
            );
            assert_eq!(alarm["ComparisonOperator"], "GreaterThanThreshold");
            assert_eq!(alarm["TreatMissingData"], "notBreaching");
            assert_eq!(
                alarm["AlarmActions"], alarm["OKActions"],
                "{binary} {metric}: clears too"
            );
            assert!(!alarm["AlarmActions"].is_null());
        }
    }
    let dlq = alarm_on(
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        &json!({ "Fn::GetAtt": ["FailedInvocationsQueue", "QueueName"] }),
    )
    .expect("SAM: the dead-letter queue's depth alarms");
    assert_eq!(dlq["AlarmActions"], dlq["OKActions"]);

    // Terraform: one alarm per function of each metric, and the queue's.
    let main = read(&terraform_dir().join("main.tf"));
    let block = |name: &str| -> String {
        let start = main
            .find(&format!(
                "resource \"aws_cloudwatch_metric_alarm\" \"{name}\""
            ))
            .unwrap_or_else(|| panic!("Terraform: no alarm {name}"));
        main[start..].split("\n}\n").next().unwrap().to_string()
    };
    for (name, metric) in [
        ("function_errors", "Errors"),
        ("function_throttles", "Throttles"),
    ] {
        let b = block(name);
        for line in [
            "for_each = local.functions".to_string(),
            "namespace           = \"AWS/Lambda\"".into(),
            format!("metric_name         = \"{metric}\""),
            "dimensions          = { FunctionName = aws_lambda_function.function[each.key].function_name }".into(),
            "threshold           = 0".into(),
            "comparison_operator = \"GreaterThanThreshold\"".into(),
            "alarm_actions       = var.alarm_actions".into(),
            "ok_actions          = var.alarm_actions".into(),
        ] {
            assert!(b.contains(&line), "Terraform {name} has {line}");
        }
    }
    let b = block("dead_letters");
    assert!(b.contains("metric_name         = \"ApproximateNumberOfMessagesVisible\""));
    assert!(
        b.contains("dimensions          = { QueueName = aws_sqs_queue.failed_invocations.name }")
    );
    assert!(b.contains("ok_actions          = var.alarm_actions"));
}
