# Sourced by check-infra.sh and build-artifacts.sh: where the pinned deployment tools live
# and how they are installed (each in its own venv: their dependency pins conflict).
# Package registries only (PyPI); nothing else is downloaded.

INFRA_TOOLS="${INFRA_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/signoz-infra-tools}"
SAM_VERSION="1.170.0"
CHECKOV_VERSION="3.3.30"
CFN_LINT_VERSION="1.51.0"
export SAM_CLI_TELEMETRY=0 PIP_DISABLE_PIP_VERSION_CHECK=1

# tool_in_venv NAME PACKAGE VERSION: prints the path of NAME, installing PACKAGE if needed.
tool_in_venv() {
    local name="$1" package="$2" version="$3" venv="$INFRA_TOOLS/$1"
    if [[ -x "$venv/bin/$name" ]] && "$venv/bin/pip" show -q "$package" >/dev/null 2>&1; then
        echo "$venv/bin/$name"
        return 0
    fi
    local started=$SECONDS
    python3 -m venv "$venv" >&2 && "$venv/bin/pip" install -q "$package==$version" >&2 || return 1
    echo "installed $package $version in $((SECONDS - started)) s" >&2
    echo "$venv/bin/$name"
}
