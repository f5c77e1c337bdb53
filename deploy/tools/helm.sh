#!/usr/bin/env bash
# helm for the chart's checks, built from source through the Go module proxy (no binary
# download): `deploy/tools/helm.sh --path` prints the binary's path, building it first if
# needed; `deploy/tools/helm.sh ARGS...` runs helm with ARGS.
#
# The binary is kept in $BACKBONE_CACHE_DIR/bin (default ~/.cache/backbone/bin) under its
# version's name, so a second run costs nothing. A lock lets .ci/run start the build in the
# background while the test that needs it waits for the same build instead of starting
# another. Without `go` it exits 3 and says so: the chart's tests skip on that code.
set -euo pipefail

HELM_VERSION="${BACKBONE_HELM_VERSION:-v3.22.0}"
cache="${BACKBONE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/backbone}"
bin_dir="$cache/bin"
helm="$bin_dir/helm-$HELM_VERSION"

tmp=""
# A build cut short (a test's timeout, ^C) leaves no half-made directory behind.
trap 'if [ -n "$tmp" ]; then rm -rf "$tmp"; fi' EXIT
trap 'exit 143' TERM INT

build() {
  if [ -x "$helm" ]; then
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "deploy/tools/helm.sh: no 'go' on PATH; helm $HELM_VERSION is built from the Go module proxy (install Go 1.24+)" >&2
    return 3
  fi
  mkdir -p "$bin_dir"
  exec 9>"$bin_dir/.helm-$HELM_VERSION.lock"
  flock 9
  if [ -x "$helm" ]; then  # built by whoever held the lock
    return 0
  fi
  tmp="$(mktemp -d "$bin_dir/.build.XXXXXX")"
  local started=$SECONDS
  echo "deploy/tools/helm.sh: building helm $HELM_VERSION with $(go version | cut -d' ' -f3) (a few minutes the first time)" >&2
  # CGO off as helm's own releases are built; -s -w: no debug tables, a faster link.
  if ! GOBIN="$tmp" GOFLAGS=-mod=mod CGO_ENABLED=0 \
      go install -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2; then
    echo "deploy/tools/helm.sh: building helm $HELM_VERSION failed" >&2
    return 1
  fi
  mv "$tmp/helm" "$helm"
  rm -rf "$tmp"
  tmp=""
  echo "deploy/tools/helm.sh: built $helm in $((SECONDS - started)) s" >&2
}

status=0
build || status=$?
if [ "$status" -ne 0 ]; then
  exit "$status"
fi
if [ "${1:-}" = "--path" ]; then
  echo "$helm"
  exit 0
fi
exec "$helm" "$@"
