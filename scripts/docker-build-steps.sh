#!/usr/bin/env bash
# The steps the Dockerfile runs, callable outside Docker (no Docker engine runs on our machines: the test
# tests/deploy/test_image_build.py runs these same steps into a fresh venv and starts the result).
#
#   docker-build-steps.sh build <venv-dir> [<src-dir>]          venv with tracetriage and its runtime deps,
#                                                               installed (not editable) from the source tree
#   docker-build-steps.sh install-config <dest-dir> [<src-dir>] gateway.yaml and catalog/*.yaml into dest-dir
#                                                               (the image's /etc/tracetriage)
#   docker-build-steps.sh verify <venv-dir> <config-dir>        the installed CLI loads every built-in component
#                                                               and accepts <config-dir>/gateway.yaml
#   docker-build-steps.sh healthcheck [<host:port>]             exit 0 when the health endpoint answers 200
#                                                               (the image's HEALTHCHECK does the same inline)
#
# <src-dir> defaults to the repository this script lives in. PYTHON picks the interpreter for `build`
# (default python3). The source tree is never written to: the package is built from a copy of the files the
# wheel needs, so no build/ or *.egg-info appears next to the sources.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() { echo "docker-build-steps: $*" >&2; exit 2; }

# The files a wheel of tracetriage is built from (keep in step with the Dockerfile's COPY lines). The tools in
# bench/ are left out: the wheel then has the runtime only, and their commands say they are not installed.
SOURCES=(pyproject.toml README.md collector pipelines)

cmd_build() {
  local venv="${1:?usage: build <venv-dir> [<src-dir>]}" src="${2:-$here}"
  local py="${PYTHON:-python3}"
  [ -f "$src/pyproject.toml" ] || die "no pyproject.toml in $src"
  local stage
  stage="$(mktemp -d "${TMPDIR:-/tmp}/tracetriage-src.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$stage'" EXIT
  local f
  for f in "${SOURCES[@]}"; do
    [ -e "$src/$f" ] || die "missing $src/$f"
    cp -R "$src/$f" "$stage/"
  done
  find "$stage" \( -name __pycache__ -o -name '*.pyc' \) -prune -exec rm -rf {} +
  "$py" -m venv "$venv"
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  "$venv/bin/python" -m pip install --quiet "$stage[jit]"
  "$venv/bin/python" -m pip check
  # The wire walk compiles with this numba (the image compiles it again on first start, into NUMBA_CACHE_DIR).
  "$venv/bin/python" -c "from collector.wire import load_compiled; assert load_compiled(), 'numba did not compile'"
  rm -rf "$stage"
  trap - EXIT
}

cmd_install_config() {
  local dest="${1:?usage: install-config <dest-dir> [<src-dir>]}" src="${2:-$here}"
  [ -f "$src/configs/gateway.yaml" ] || die "no configs/gateway.yaml in $src"
  mkdir -p "$dest/catalog"
  cp "$src/configs/gateway.yaml" "$dest/gateway.yaml"
  local n=0 f
  for f in "$src"/configs/catalog/*.yaml; do
    [ -e "$f" ] || continue
    cp "$f" "$dest/catalog/"
    n=$((n + 1))
  done
  [ "$n" -gt 0 ] || echo "docker-build-steps: warning: no catalog files in $src/configs/catalog" >&2
  chmod -R a+rX "$dest"
}

cmd_verify() {
  local venv="${1:?usage: verify <venv-dir> <config-dir>}" conf="${2:?usage: verify <venv-dir> <config-dir>}"
  local out
  # A built-in component that cannot be imported makes this fail; a broken plugin prints "warning: ...".
  out="$("$venv/bin/tracetriage" components 2>&1 >/dev/null)" || die "tracetriage components failed: $out"
  [ -z "$out" ] || die "a component failed to load: $out"
  CATALOG_GLOB="$conf/catalog/*.yaml" "$venv/bin/tracetriage" validate --config "$conf/gateway.yaml"
}

cmd_healthcheck() {
  local addr="${1:-${TT_HEALTH:-0.0.0.0:13133}}"
  local port="${addr##*:}"
  "${PYTHON:-python3}" -c 'import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=5)' \
    "http://127.0.0.1:${port}/"
}

main() {
  local cmd="${1:-}"
  shift || true
  case "$cmd" in
    build) cmd_build "$@" ;;
    install-config) cmd_install_config "$@" ;;
    verify) cmd_verify "$@" ;;
    healthcheck) cmd_healthcheck "$@" ;;
    *) die "usage: $0 {build <venv> [<src>]|install-config <dest> [<src>]|verify <venv> <conf>|healthcheck [<host:port>]}" ;;
  esac
}

main "$@"
