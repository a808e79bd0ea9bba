#!/usr/bin/env bash
# Runs the control plane locally on the embedded default: starts a private local stack
# (moto, PostgreSQL with TLS, a real kube-apiserver with RBAC), seeds it like a real account,
# and invokes each function's real binary through a local Lambda Runtime API with the
# payloads in events/, telling in a few lines what each did; the full answers and the
# functions' JSON logs go to files it names. Stops everything it started on exit.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

tests/bin/setup.sh
echo "== build"
cargo build --locked -p rotate-credentials -p enforce-cold-storage -p sync-cluster \
  -p respond-to-alarms -p signoz-control-cli -p platform-tests --bins

export STACK_DIR
STACK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/signoz-control-local.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  tests/bin/stack.sh stop > /dev/null 2>&1 || true
  rm -rf "$STACK_DIR"
}
trap cleanup EXIT INT TERM
echo "== local stack ($STACK_DIR)"
tests/bin/stack.sh start
# shellcheck disable=SC1091
source "$STACK_DIR/env"

export AWS_LAMBDA_LOG_FORMAT=JSON
aws_() { aws --output json "$@"; }
target=${CARGO_TARGET_DIR:-$repo/target}/debug
out=${LOCAL_RUN_OUT:-${CARGO_TARGET_DIR:-$repo/target}/local-run}
mkdir -p "$out"
answers=$out/answers.jsonl logs=$out/function-logs.jsonl telemetry=$out/telemetry.jsonl
: > "$answers"; : > "$logs"; : > "$telemetry"
# Each function talks to Kubernetes as its own identity (the group its EKS access entry
# maps its role to), never as the admin that arranged the cluster.
run() {
  local fn=
  for a in "$@"; do
    case $a in rotate-credentials|enforce-cold-storage|sync-cluster|respond-to-alarms) fn=$a; break ;; esac
  done
  echo
  KUBECONFIG="$STACK_DIR/kube/$fn.kubeconfig" "$target/lambda-run" --log "$logs" --answers "$answers" "$@"
}
# The platform engineer's CLI, with the admin's credentials and kubeconfig (exit codes shown).
cli() {
  echo; echo "\$ signoz-control $*"
  local rc=0
  "$target/signoz-control" "$@" || rc=$?
  echo "(exit code $rc)"
}

echo "== seed: buckets, secrets, RDS instance, EKS cluster, the platform spec"
for b in acme-signoz-config acme-signoz-cold acme-signoz-control; do aws_ s3api create-bucket --bucket "$b" \
  --create-bucket-configuration LocationConstraint=eu-west-1 > /dev/null; done
aws_ rds create-db-instance --db-instance-identifier signoz-metadata --engine postgres \
  --db-instance-class db.t4g.medium --allocated-storage 20 --master-username postgres \
  --master-user-password "$(cat "$PG_SUPERPASSWORD_FILE")" --storage-encrypted \
  --deletion-protection --multi-az > /dev/null
master_arn=$(aws_ secretsmanager create-secret --name signoz/metadata-db/master \
  --secret-string "$(python3 -c 'import json,os,sys; print(json.dumps({"engine":"postgres","host":os.environ["PGHOST"],"port":int(os.environ["PGPORT"]),"username":"postgres","password":open(os.environ["PG_SUPERPASSWORD_FILE"]).read().strip(),"dbname":"postgres"}))')" \
  --query ARN --output text)
# The deployment creates the app secret empty; provisioning writes its first value.
aws_ secretsmanager create-secret --name signoz/metadata-db/app \
  --description "SigNoz metadata database credentials" > /dev/null
api_key="local-admin-key-$(openssl rand -hex 8)"
aws_ secretsmanager create-secret --name signoz/admin-api-key --secret-string "$api_key" > /dev/null
# The rotation function itself, so Secrets Manager (moto) accepts it as the rotator.
(cd "$target" && rm -f "$STACK_DIR/rotate.zip" && python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1], "w").write("rotate-credentials", "bootstrap")' "$STACK_DIR/rotate.zip")
role_arn=$(aws_ iam create-role --role-name signoz-control-rotate-credentials --query Role.Arn --output text \
  --assume-role-policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}')
export ROTATION_LAMBDA_ARN
ROTATION_LAMBDA_ARN=$(aws_ lambda create-function --function-name signoz-control-rotate-credentials --runtime provided.al2023 \
  --handler bootstrap --architectures x86_64 --role "$role_arn" \
  --zip-file "fileb://$STACK_DIR/rotate.zip" --query FunctionArn --output text)
aws_ eks create-cluster --name acme-prod --role-arn arn:aws:iam::123456789012:role/eks \
  --resources-vpc-config subnetIds=subnet-1,subnet-2 > /dev/null

# The example spec, with the local endpoints the stack provides: SigNoz's TTL API and the
# OTLP receiver standing in for its collector (the functions' own telemetry).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ttl_port=$(free_port) otlp_port=$(free_port)
sed -e "s|master_secret_arn: .*|master_secret_arn: \"$master_arn\"|" \
    -e "s|url: https://signoz.acme-prod.internal|url: http://127.0.0.1:$ttl_port|" \
    -e "s|endpoint: http://signoz-otel-collector.acme-prod.internal:4318|endpoint: http://127.0.0.1:$otlp_port|" \
    -e "s|    mode: verify-full|    mode: verify-full\n    ca_file: $STACK_CA_FILE|" \
    infra/platform.yaml > "$STACK_DIR/platform.yaml"
aws_ s3 cp "$STACK_DIR/platform.yaml" s3://acme-signoz-config/platform.yaml > /dev/null
export PLATFORM_SPEC=s3://acme-signoz-config/platform.yaml
# Each function runs under its deployment role (functions.json rendered for this spec):
# lambda-run assumes it; the admin's credentials only arranged the world above.
export DEPLOYMENT_SPEC=$PLATFORM_SPEC
"$target/signoz-ttl-api" --port "$ttl_port" --api-key "$api_key" > "$STACK_DIR/ttl-api.log" 2>&1 &
pids+=($!)
"$target/otlp-receiver" --port "$otlp_port" --out "$telemetry" > "$STACK_DIR/otlp.log" 2>&1 &
pids+=($!)
# The namespaces exist before the deployment's RBAC (its Roles live in them); the
# functions never create namespaces.
for ns in platform apps argocd; do kubectl create namespace "$ns" > /dev/null; done
echo "== the deployment's Kubernetes RBAC, rendered from the spec (signoz-control rbac)"
"$target/signoz-control" rbac "$STACK_DIR/platform.yaml" | kubectl apply --server-side -f -
for fn in rotate-credentials enforce-cold-storage sync-cluster respond-to-alarms; do
  "$target/kube-identity" "$STACK_DIR/kube/$fn.kubeconfig" \
    "arn:aws:sts::123456789012:assumed-role/acme-prod-$fn/$fn" "signoz-control:acme-prod:$fn"
done
# The workloads the spec names: SigNoz itself and the instrumented Python services.
kubectl -n platform create -f - > /dev/null <<'YAML'
{"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "signoz"},
 "spec": {"serviceName": "signoz", "selector": {"matchLabels": {"app": "signoz"}},
  "template": {"metadata": {"labels": {"app": "signoz"}},
   "spec": {"containers": [{"name": "signoz", "image": "signoz/signoz:v0.131.0"}]}}}}
YAML
for w in api worker beat flower; do
  kubectl -n apps create deployment "$w" --image="acme/$w:1.0" > /dev/null
done

echo "== arranged: buckets, RDS instance, master/app/API-key secrets, EKS cluster entry, the"
echo "   spec in s3://acme-signoz-config, namespaces, RBAC, SigNoz and four Python workloads"

echo; echo "== an invalid spec is refused before anything is written"
sed -e 's/STANDARD_IA: 30/STANDARD_IA: 10/' -e 's/argument: "1"/argument: "1.5"/' \
  "$STACK_DIR/platform.yaml" > "$STACK_DIR/invalid.yaml"
cli validate "$STACK_DIR/invalid.yaml"
PLATFORM_SPEC=$STACK_DIR/invalid.yaml run --allow-errors enforce-cold-storage events/schedule.json

echo; echo "== what the control plane would do to this fresh platform"
cli plan "$PLATFORM_SPEC" --only cluster

echo; echo "== rotate-credentials: provision, then one full rotation"
run rotate-credentials events/control-provision-database.json
app_secret=signoz/metadata-db/app
pending() {
  aws_ secretsmanager describe-secret --secret-id "$app_secret" --query VersionIdsToStages |
    python3 -c 'import json,sys; print(next((v for v, s in json.load(sys.stdin).items() if "AWSPENDING" in s), ""))'
}
# moto quirk: provisioning's RotateSecret(RotateImmediately=false) leaves AWSPENDING on a
# copy of the current value (real Secrets Manager leaves no pending version). Drop it,
# then start a rotation the way the service does: AWSPENDING on a new, empty version.
# moto cannot invoke us, so we send the four steps ourselves.
stale=$(pending)
if [ -n "$stale" ]; then
  aws_ secretsmanager update-secret-version-stage --secret-id "$app_secret" \
    --version-stage AWSPENDING --remove-from-version-id "$stale" > /dev/null
fi
# (Without the Lambda ARN, moto would move AWSCURRENT to the new empty version.)
aws_ secretsmanager rotate-secret --secret-id "$app_secret" --rotation-lambda-arn "$ROTATION_LAMBDA_ARN" \
  --rotation-rules AutomaticallyAfterDays=30 > /dev/null
token=$(pending)
for step in create set test finish; do
  python3 - "$step" "$app_secret" "$token" > "$STACK_DIR/rotation-$step.json" <<'PY'
import json, sys
step, secret, token = sys.argv[1:]
print(json.dumps({"Step": step + "Secret", "SecretId": secret, "ClientRequestToken": token}))
PY
done
run rotate-credentials "$STACK_DIR"/rotation-{create,set,test,finish}.json 2>&1 |
  tee "$STACK_DIR/rotation-run.log"
aws_ secretsmanager list-secret-version-ids --secret-id "$app_secret" \
  --query 'Versions[].[VersionId,join(`,`,VersionStages)]' --output text | sed 's/^/   version /'
cat "$logs" "$answers" >> "$STACK_DIR/rotation-run.log"
# The function's output (its JSON logs, its answers) holds no password, in any encoding,
# of the version it rotated in or the one it replaced. Values go through stdin, never argv.
for stage in AWSCURRENT AWSPREVIOUS; do
  aws_ secretsmanager get-secret-value --secret-id "$app_secret" --version-stage "$stage" \
    --query SecretString --output text |
    python3 -c '
import base64, json, sys, urllib.parse
password = json.loads(sys.stdin.read())["password"]
log = open(sys.argv[1]).read()
forms = [password, urllib.parse.quote(password, safe=""),
         base64.b64encode(password.encode()).decode(),
         base64.urlsafe_b64encode(password.encode()).decode().rstrip("=")]
if any(f in log for f in forms):
    sys.exit(f"a password of {sys.argv[2]} reached the function output")
print(f"   no password of {sys.argv[2]} in the function output")' "$STACK_DIR/rotation-run.log" "$stage"
done

echo; echo "== enforce-cold-storage: dry run (plan and cost curve), apply, no-op, undo drift"
run enforce-cold-storage events/control-reconcile-cold-storage.json
# The dry run leaves its plan and the cost chart side by side in the state store.
aws_ s3 cp s3://acme-signoz-control/state/cold-storage/plan.json "$out/plan.json" > /dev/null
aws_ s3 cp s3://acme-signoz-control/state/cold-storage/cost-curve.svg "$out/cost-curve.svg" > /dev/null
python3 - "$out/plan.json" <<'PY'
import json, sys
cost = json.load(open(sys.argv[1]))["cost"]
print("   monthly S3 cost of the cold tiers (USD):")
print("\n".join("   " + l for l in cost["table"].splitlines()))
PY
echo "   plan: $out/plan.json, chart: $out/cost-curve.svg (assumptions: signoz-control cost)"
# SigNoz's TTL jobs run in the background (v1): the first apply may leave them pending,
# the next run reports whether what was sent landed ("verified").
run enforce-cold-storage events/schedule.json events/schedule.json
aws_ s3api delete-bucket-lifecycle --bucket acme-signoz-cold
run enforce-cold-storage events/cloudtrail-delete-bucket-lifecycle.json

echo; echo "== sync-cluster: apply everything, then a no-op"
run sync-cluster events/schedule.json events/schedule.json
kubectl get scaledobjects,instrumentations,applications -A | sed 's/^/   /'
echo "   SigNoz's Application: $(kubectl -n argocd get application signoz -o jsonpath='sync {.spec.syncPolicy.automated}, retry {.spec.syncPolicy.retry.limit}, replicas left to KEDA: {.spec.ignoreDifferences[0].jsonPointers}')"
cli plan "$PLATFORM_SPEC" --only cluster

echo; echo "== respond-to-alarms"
# alarm_event NAME STATE REASON FILE: sets the alarm's state in CloudWatch (moto) and writes
# the "CloudWatch Alarm State Change" event EventBridge delivers for it.
alarm_event() {
  aws_ cloudwatch set-alarm-state --alarm-name "$1" --state-value "$2" --state-reason "$3"
  aws_ cloudwatch describe-alarms --alarm-names "$1" | python3 -c '
import datetime, json, sys
a = json.load(sys.stdin)["MetricAlarms"][0]
t = a["StateUpdatedTimestamp"]
t = (datetime.datetime.fromtimestamp(t, datetime.timezone.utc) if isinstance(t, (int, float))
     else datetime.datetime.fromisoformat(t.replace("Z", "+00:00")))
stamp = t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03d+0000" % (t.microsecond // 1000)
print(json.dumps({"version": "0", "id": "local-" + stamp, "detail-type": "CloudWatch Alarm State Change",
  "source": "aws.cloudwatch", "account": "123456789012", "time": stamp, "region": "eu-west-1",
  "resources": [a["AlarmArn"]], "detail": {"alarmName": a["AlarmName"],
  "state": {"value": a["StateValue"], "reason": a["StateReason"], "timestamp": stamp},
  "configuration": {"description": a.get("AlarmDescription", "")}}}))' > "$4"
}
scaled() {
  kubectl -n platform get scaledobject signoz-otel-collector \
    -o jsonpath='   maxReplicaCount={.spec.maxReplicaCount} remediation={.metadata.annotations.signoz-control-plane/remediation}{"\n"}'
}
# The example's cooldowns (15 and 60 minutes), shortened here so reverts show without waiting.
sed -e '/name: collector-pressure/,/cooldown_minutes/s/cooldown_minutes: 15/cooldown_minutes: 0/' \
    -e '/name: clickhouse-disk/,/cooldown_minutes/s/cooldown_minutes: 60/cooldown_minutes: 0/' \
  "$STACK_DIR/platform.yaml" > "$STACK_DIR/platform-alarms.yaml"
aws_ s3 cp "$STACK_DIR/platform-alarms.yaml" s3://acme-signoz-config/platform.yaml > /dev/null
alarm=signoz-collector-queue-pressure
aws_ cloudwatch put-metric-alarm --alarm-name "$alarm" --namespace SigNoz/Collector \
  --metric-name ExporterQueueUtilization --statistic Average --period 300 \
  --evaluation-periods 1 --threshold 80 --comparison-operator GreaterThanThreshold
echo "   before:"; scaled
alarm_event "$alarm" ALARM "Threshold Crossed: export queue at 91%" "$STACK_DIR/alarm-raised.json"
# The event twice: the second changes nothing.
run respond-to-alarms "$STACK_DIR/alarm-raised.json" "$STACK_DIR/alarm-raised.json"
echo "   raised:"; scaled
# sync-cluster's schedule keeps the remediation in force.
run sync-cluster events/schedule.json
echo "   after sync-cluster:"; scaled
# CloudWatch sends no second event while the alarm stays in ALARM: the schedule escalates
# once per cooldown (0 here), from the alarm's state as DescribeAlarms reports it.
run respond-to-alarms events/schedule.json
echo "   still in ALARM after the cooldown:"; scaled
cli status "$PLATFORM_SPEC"
alarm_event "$alarm" OK "Threshold Crossed: export queue at 35%" "$STACK_DIR/alarm-cleared.json"
# The OK, then the older ALARM again (out of order): the revert stands.
run respond-to-alarms "$STACK_DIR/alarm-cleared.json" "$STACK_DIR/alarm-raised.json"
echo "   cleared:"; scaled
# ClickHouse disk high: hot days go down through SigNoz's TTL API for new parts only (the
# answer's "report" says what that does and does not do, and the floor it raises, bounded
# by the bucket's expiration), and come back on OK.
disk=signoz-clickhouse-disk-high
aws_ cloudwatch put-metric-alarm --alarm-name "$disk" --namespace ContainerInsights \
  --metric-name pod_volume_utilization --statistic Maximum --period 300 \
  --evaluation-periods 1 --threshold 85 --comparison-operator GreaterThanOrEqualToThreshold
ttls() { curl -s -H "SIGNOZ-API-KEY: $api_key" "http://127.0.0.1:$ttl_port/api/v1/settings/ttl?type=$1" |
  python3 -c 'import json,sys; t=json.load(sys.stdin); print(f"   {t}")'; }
alarm_event "$disk" ALARM "Threshold Crossed: volume at 86%" "$STACK_DIR/disk-raised.json"
run respond-to-alarms "$STACK_DIR/disk-raised.json"
echo "   traces TTL while the disk is high:"; ttls traces
alarm_event "$disk" OK "Threshold Crossed: volume at 60%" "$STACK_DIR/disk-cleared.json"
run respond-to-alarms "$STACK_DIR/disk-cleared.json"
echo "   traces TTL after OK:"; ttls traces
# INSUFFICIENT_DATA is remembered, changes no level; the schedule finds nothing due.
alarm_event "$alarm" INSUFFICIENT_DATA "no datapoints" "$STACK_DIR/alarm-unknown.json"
run respond-to-alarms "$STACK_DIR/alarm-unknown.json" events/schedule.json

echo; echo "== the platform as the CLI sees it now"
cli plan "$PLATFORM_SPEC"

echo; echo "== the control plane's own telemetry, as the collector received it (one trace per invocation)"
sleep 1
python3 - "$telemetry" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    s = json.loads(line)
    spans = ", ".join(f"{n} x{c}" for n, c in sorted(s["spans"].items(), key=lambda kv: -kv[1])[:6])
    c = s.get("counters", {})
    print(f"   {s['service']}: {s['traces']} traces; counters changes_applied={c.get('signoz_control.changes_applied', 0)} "
          f"drift_undone={c.get('signoz_control.drift_undone', 0)} refusals={c.get('signoz_control.refusals', 0)}; spans {spans}, ...")
PY

echo
echo "== local run complete"
echo "   full answers: $answers"
echo "   the functions' JSON logs: $logs"
echo "   telemetry received: $telemetry"
