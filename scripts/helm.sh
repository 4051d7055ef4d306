#!/usr/bin/env bash
# Provides Helm v3 for rendering deploy/helm/lb-ip-guard. Helm is built from source through the
# Go module proxy (the only place binaries may come from here) into a cache keyed by version, so
# only the first run on a machine pays for the build (about 5-10 minutes on 2 cores).
#
#   scripts/helm.sh              build or reuse, print the binary's path
#   scripts/helm.sh ARGS...      build or reuse, then run `helm ARGS...`
#
# HELM_VERSION overrides the pinned release; LB_IP_GUARD_CACHE moves the cache (default
# ~/.cache/lb-ip-guard); LB_IP_GUARD_NO_BUILD=1 exits 3 instead of building. Progress is one
# line on stderr, and only when a build starts.
set -euo pipefail

helm_version="${HELM_VERSION:-v3.22.0}"
bin_dir="${LB_IP_GUARD_CACHE:-$HOME/.cache/lb-ip-guard}/bin"
helm_bin="$bin_dir/helm-$helm_version"

build() {
  local go gomod k8s_minor staging out pkg
  go="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
  [ -x "$go" ] || { echo "helm.sh: Go is needed to build helm $helm_version (none on PATH or at /usr/local/go/bin/go)" >&2; exit 2; }
  echo "helm.sh: building helm $helm_version with $("$go" env GOVERSION) into $bin_dir (first run only; minutes on 2 cores)" >&2
  # GOTOOLCHAIN=local: never fetch another Go behind the caller's back.
  export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=
  # Helm's Makefile stamps the Kubernetes version of its client-go (v0.N.x is Kubernetes 1.N)
  # into .Capabilities.KubeVersion; without it `helm template` assumes v1.20.0.
  if ! out="$("$go" mod download -json "helm.sh/helm/v3@$helm_version" 2>&1)"; then
    echo "helm.sh: go mod download helm.sh/helm/v3@$helm_version failed: $(printf '%s' "$out" | grep -m1 '"Error"' || printf '%s' "$out" | tail -n 1)" >&2
    exit 1
  fi
  gomod="$(printf '%s\n' "$out" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
  k8s_minor="$(sed -n 's#^[[:space:]]*k8s.io/client-go v0\.\([0-9][0-9]*\)\..*#\1#p' "$gomod" | head -n 1)"
  [ -n "$k8s_minor" ] || { echo "helm.sh: no k8s.io/client-go requirement in $gomod" >&2; exit 1; }
  local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
  for pkg in pkg/chartutil pkg/lint/rules; do
    ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$k8s_minor"
  done
  staging="$(mktemp -d "$bin_dir/.helm-build.XXXXXX")"
  if ! out="$(GOBIN="$staging" "$go" install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$helm_version" 2>&1)"; then
    rm -rf "$staging"
    echo "helm.sh: go install helm.sh/helm/v3/cmd/helm@$helm_version failed: $(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')" >&2
    exit 1
  fi
  mv "$staging/helm" "$helm_bin" # same filesystem: atomic
  rm -rf "$staging"
}

if [ ! -x "$helm_bin" ]; then
  if [ -n "${LB_IP_GUARD_NO_BUILD:-}" ]; then
    echo "helm.sh: helm $helm_version is not built yet ($helm_bin)" >&2
    exit 3
  fi
  mkdir -p "$bin_dir"
  # One build at a time per machine: a second caller waits, then reuses the first one's binary.
  exec 9>"$bin_dir/.helm-$helm_version.lock"
  flock 9
  [ -x "$helm_bin" ] || (build)
  exec 9>&-
fi

if [ "$#" -eq 0 ]; then
  echo "$helm_bin"
else
  exec "$helm_bin" "$@"
fi
