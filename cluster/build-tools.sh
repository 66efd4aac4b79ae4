#!/usr/bin/env bash
# Build the local cluster's binaries from pinned Go modules (checksums in go.sum) into
# a cache outside the repository. Two module sets, each built on its own:
#   build-tools.sh            the control plane, kubelet, KWOK and Helm (cluster/tools)
#   build-tools.sh storage    rancher's local-path-provisioner (cluster/storage)
#
# Each set's cache directory is keyed by a hash of its go.mod, go.sum and build_format,
# so a changed pin builds a new set and an unchanged one is only checked; a new pin in
# one set never rebuilds the other. Prints the directory holding the binaries on its
# last line of stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
set_name="${1:-tools}"
case "$set_name" in tools|storage) ;; *) echo "usage: $0 [tools|storage]" >&2; exit 2 ;; esac
tools="$here/$set_name"
cache_root="${SHARD_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shard-operator}"
# Bump build_format when the flags below change, so that a new set is built.
build_format=1
key="$( (cat "$tools/go.mod" "$tools/go.sum"; echo "$build_format") | sha256sum | cut -c1-16)"
out="$cache_root/$set_name/$key"

version_of() { awk -v m="$1" '$1 == m { print $2; exit }' "$tools/go.mod"; }

if [ "$set_name" = storage ]; then
  lpp_version="$(version_of github.com/rancher/local-path-provisioner)"
  targets=("local-path-provisioner|github.com/rancher/local-path-provisioner|-s -w -X main.VERSION=$lpp_version")
  stamp() { printf 'local-path-provisioner=%s\n' "$lpp_version"; }
else
kube_version="$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$tools/go.mod")"
helm_version="$(version_of helm.sh/helm/v3)"
kwok_version="$(version_of sigs.k8s.io/kwok)"
kube_minor="$(echo "$kube_version" | cut -d. -f2)"

kube_ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$kube_version \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$kube_minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z \
 -X k8s.io/client-go/pkg/version.gitVersion=$kube_version"

# name | package | ldflags
targets=(
  "etcd|go.etcd.io/etcd/server/v3|-s -w"
  "kube-apiserver|k8s.io/kubernetes/cmd/kube-apiserver|$kube_ldflags"
  "kube-controller-manager|k8s.io/kubernetes/cmd/kube-controller-manager|$kube_ldflags"
  "kube-scheduler|k8s.io/kubernetes/cmd/kube-scheduler|$kube_ldflags"
  "kubelet|k8s.io/kubernetes/cmd/kubelet|$kube_ldflags"
  "kwok|sigs.k8s.io/kwok/cmd/kwok|-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$kwok_version"
  "helm|helm.sh/helm/v3/cmd/helm|-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
)
stamp() { printf 'kubernetes=%s\nhelm=%s\nkwok=%s\n' "$kube_version" "$helm_version" "$kwok_version"; }
fi

if [ -f "$out/.complete" ]; then
  echo "cluster $set_name: cached in $out" >&2
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "cluster $set_name: 'go' is not on PATH; install Go >= 1.24" >&2; exit 1; }
mkdir -p "$out"
echo "cluster $set_name: building ${#targets[@]} binaries into $out (with empty Go caches: about 11 min for tools, 2-7 min for storage, on 2 cores)" >&2
start_all=$SECONDS
(cd "$tools" && go mod download) >&2
i=0
for t in "${targets[@]}"; do
  i=$((i + 1))
  IFS='|' read -r name pkg ldflags <<<"$t"
  if [ -x "$out/$name" ]; then
    echo "cluster $set_name: [$i/${#targets[@]}] $name already built" >&2
    continue
  fi
  echo "cluster $set_name: [$i/${#targets[@]}] building $name ($pkg) ..." >&2
  t0=$SECONDS
  (cd "$tools" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$name.tmp" "$pkg") >&2
  mv "$out/$name.tmp" "$out/$name"
  echo "cluster $set_name: [$i/${#targets[@]}] $name built in $((SECONDS - t0)) s" >&2
done
{ stamp; printf 'build_seconds=%s\n' "$((SECONDS - start_all))"; } >"$out/.complete"
echo "cluster $set_name: done in $((SECONDS - start_all)) s" >&2
echo "$out"
