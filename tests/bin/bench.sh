#!/usr/bin/env bash
# Benchmarks: builds the functions and a hello-world lambda_runtime baseline with the
# release profile, starts a private local stack (moto, PostgreSQL, kube-apiserver), runs
# target/debug/bench, writes tests/bench/RESULTS.md and
# prints it, and stops everything it started. Extra arguments go to the bench
# (--init-runs K, --fleet 1,10,100, --latency 0,20ms). BENCH_PROFILE=debug gives a quick, meaningless
# smoke run of the same steps.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

tests/bin/setup.sh
profile=${BENCH_PROFILE:-release}
profile_flag=(); [ "$profile" = release ] && profile_flag=(--release)
echo "== build ($profile functions and baseline, one cargo invocation so features unify alike)"
cargo build --locked "${profile_flag[@]}" -p rotate-credentials -p enforce-cold-storage \
  -p sync-cluster -p respond-to-alarms -p hello-world
# The harness (runtime API, proxies) is a debug build: its per-request overhead adds
# equally to the baseline and the functions.
cargo build --locked -p platform-bench
target=${CARGO_TARGET_DIR:-$repo/target}

export STACK_DIR
STACK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/signoz-control-bench.XXXXXX")
cleanup() { tests/bin/stack.sh stop > /dev/null 2>&1 || true; rm -rf "$STACK_DIR"; }
trap cleanup EXIT INT TERM
echo "== local stack ($STACK_DIR)"
tests/bin/stack.sh start
# shellcheck disable=SC1091
source "$STACK_DIR/env"
# Every function acts as its own Kubernetes identity (the bench mints them) and under its
# deployment role (functions.json rendered for each bench platform, assumed per process);
# the admin's kubeconfig and AWS credentials only seed the world.
unset KUBECONFIG

echo "== bench"
out=$repo/tests/bench/RESULTS.md
"$target/debug/bench" --release-dir "$target/$profile" --out "$out" "$@"
echo
cat "$out"
