#!/usr/bin/env bash
# Offline checks of the deployment code (issue 8): cfn-lint, sam validate --lint,
# terraform fmt, checkov on both frameworks. One line per check; non-zero exit on any
# failure. Installs aws-sam-cli and checkov (pinned, each in its own venv: their
# dependency pins conflict) when they are missing; the first install takes ~100 s.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${INFRA_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/signoz-infra-tools}"
SAM_VERSION="1.170.0"
CHECKOV_VERSION="3.3.30"
TEMPLATE="$ROOT/infra/sam/template.yaml"

# No network, no credentials: the tools must not reach AWS or their vendors.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-eu-west-1}"
export AWS_REGION="$AWS_DEFAULT_REGION"
export AWS_ACCESS_KEY_ID="offline-check" AWS_SECRET_ACCESS_KEY="offline-check"
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL
export SAM_CLI_TELEMETRY=0 BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false
export PIP_DISABLE_PIP_VERSION_CHECK=1

failures=0
log="$(mktemp -d)"
trap 'rm -rf "$log"' EXIT

# tool_in_venv NAME PACKAGE VERSION: prints the path of NAME, installing PACKAGE if needed.
tool_in_venv() {
    local name="$1" package="$2" version="$3" venv="$TOOLS/$1"
    if [[ -x "$venv/bin/$name" ]] && "$venv/bin/pip" show -q "$package" >/dev/null 2>&1; then
        echo "$venv/bin/$name"
        return 0
    fi
    local started=$SECONDS
    python3 -m venv "$venv" >&2 && "$venv/bin/pip" install -q "$package==$version" >&2 || return 1
    echo "installed $package $version in $((SECONDS - started)) s" >&2
    echo "$venv/bin/$name"
}

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
    CFN_LINT="$(tool_in_venv cfn-lint cfn-lint 1.51.0)" || { echo "FAIL install cfn-lint"; exit 1; }
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
