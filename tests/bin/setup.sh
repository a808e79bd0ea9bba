#!/usr/bin/env bash
# Installs what the local run and the tests need, once: Debian packages (PostgreSQL 15,
# openssl, kubectl and etcd if missing), Python packages (moto[server], cargo-lambda, ziglang,
# awscli), and checks the Rust toolchain. Idempotent; works as root or as a user with sudo.
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
