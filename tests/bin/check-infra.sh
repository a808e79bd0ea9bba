#!/usr/bin/env bash
# Offline checks of the deployment code (issue 8): cfn-lint, sam validate --lint,
# terraform fmt, checkov on both frameworks. One line per check; non-zero exit on any
# failure. Installs aws-sam-cli and checkov (pinned, each in its own venv: their
# dependency pins conflict) when they are missing; the first install takes ~100 s.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TEMPLATE="$ROOT/infra/sam/template.yaml"

# No network, no credentials: the tools must not reach AWS or their vendors.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-eu-west-1}"
export AWS_REGION="$AWS_DEFAULT_REGION"
export AWS_ACCESS_KEY_ID="offline-check" AWS_SECRET_ACCESS_KEY="offline-check"
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL
export BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false
# shellcheck source=tests/bin/infra-tools.sh
source "$ROOT/tests/bin/infra-tools.sh"

failures=0
log="$(mktemp -d)"
trap 'rm -rf "$log"' EXIT

# check NAME COMMAND...: runs one check, prints one line, keeps the output on failure.
check() {
    local name="$1" started=$SECONDS out
    shift
    out="$log/$(echo "$name" | tr -c 'a-zA-Z0-9' '_')"
    if "$@" >"$out" 2>&1; then
        echo "ok   $name ($((SECONDS - started)) s)"
    else
        echo "FAIL $name ($((SECONDS - started)) s)"
        sed 's/^/     /' "$out" | tail -n 60
        failures=$((failures + 1))
    fi
}

SAM="$(tool_in_venv sam aws-sam-cli "$SAM_VERSION")" || { echo "FAIL install aws-sam-cli"; exit 1; }
CHECKOV="$(tool_in_venv checkov checkov "$CHECKOV_VERSION")" || { echo "FAIL install checkov"; exit 1; }
CFN_LINT="$(command -v cfn-lint || true)"
if [[ -z "$CFN_LINT" ]]; then
    CFN_LINT="$(tool_in_venv cfn-lint cfn-lint "$CFN_LINT_VERSION")" || { echo "FAIL install cfn-lint"; exit 1; }
fi

check "cfn-lint infra/sam/template.yaml" "$CFN_LINT" "$TEMPLATE"
check "sam validate --lint" "$SAM" validate --lint --template-file "$TEMPLATE" --region "$AWS_DEFAULT_REGION"
if command -v terraform >/dev/null; then
    check "terraform fmt -check -recursive infra/terraform" terraform fmt -check -recursive "$ROOT/infra/terraform"
else
    echo "FAIL terraform fmt: terraform is not installed"
    failures=$((failures + 1))
fi
# From a scratch directory: checkov leaves a checkov.log in its working directory.
run_checkov() { (cd "$log" && "$CHECKOV" "$@"); }
check "checkov cloudformation,terraform" run_checkov -d "$ROOT/infra" \
    --framework cloudformation,terraform --quiet --compact --skip-download

if ((failures > 0)); then
    echo "$failures infra check(s) failed"
    exit 1
fi
echo "all infra checks passed"
