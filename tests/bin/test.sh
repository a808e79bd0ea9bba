#!/usr/bin/env bash
# Runs every test: installs what is missing, builds, starts a private local stack (moto,
# PostgreSQL with TLS, the Kubernetes emulator) in a temporary directory, runs the whole
# workspace's tests against it plus the offline infrastructure checks, and stops the
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

echo "== tests"
cargo test --workspace --locked --no-fail-fast

if [ -x tests/bin/check-infra.sh ]; then
  echo "== infrastructure checks"
  tests/bin/check-infra.sh
fi
echo "== all tests passed"
