#!/usr/bin/env bash
# Runs every test: installs what is missing, builds, starts a private local stack (moto,
# PostgreSQL 15 and 18 with TLS, a real kube-apiserver with RBAC and the platform's CRDs) in a
# temporary directory, runs the whole
# workspace's tests against it plus the offline infrastructure checks, builds the four
# Lambda artifacts the documented ways (tests/bin/build-artifacts.sh), and stops the
# stack whatever happens.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

tests/bin/setup.sh

echo "== build"
cargo build --workspace --all-targets --locked

export STACK_DIR
STACK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/signoz-control-test.XXXXXX")
cleanup() { tests/bin/stack.sh stop > /dev/null 2>&1 || true; rm -rf "$STACK_DIR"; }
trap cleanup EXIT INT TERM
echo "== local stack ($STACK_DIR)"
tests/bin/stack.sh start
# shellcheck disable=SC1091
source "$STACK_DIR/env"
# Tests arrange the cluster as the admin (KUBE_ADMIN_KUBECONFIG) and run every function as
# its own RBAC identity; nothing may fall back to the admin's kubeconfig.
unset KUBECONFIG

echo "== tests"
cargo test --workspace --locked --no-fail-fast

# PostgreSQL 16 changed the role rules (CREATEROLE no longer implies ADMIN OPTION): the
# credentials and provisioning tests run again on the stack's PostgreSQL 18.
[ -n "${PG18_PORT:-}" ] || { echo "test: the stack has no PostgreSQL 18 (tests/bin/setup.sh installs it)" >&2; exit 1; }
echo "== credentials and provisioning on PostgreSQL 18"
PGPORT=$PG18_PORT PG_LOG_FILE=$PG18_LOG_FILE \
  cargo test -p platform-tests --test integration --locked --no-fail-fast -- credentials:: log_hygiene::

# What ran against the real API server, from its audit log: every request a function
# identity made (the admin's arranging is not counted).
python3 - "$STACK_DIR/kube-audit.log" <<'PY'
import json, sys
platforms, requests, refused = set(), 0, 0
for line in open(sys.argv[1]):
    event = json.loads(line)
    user = event.get("user", {}).get("username", "")
    if user == "stack-admin" or user.startswith("system:"):
        continue
    requests += 1
    refused += event.get("responseStatus", {}).get("code") == 403
    if user.startswith("arn:aws:sts:"):
        platforms.add(user.rsplit("/", 1)[-1])
print(f"== real kube-apiserver: {len(platforms)} test platforms, {requests} requests by function "
      f"identities under the shipped RBAC ({refused} refused with 403, as tests expect)")
PY

if [ -x tests/bin/check-infra.sh ]; then
  echo "== infrastructure checks"
  tests/bin/check-infra.sh
fi
echo "== Lambda artifacts (cargo lambda build --release, sam build, checks and size budgets)"
tests/bin/build-artifacts.sh
echo "== all tests passed"
