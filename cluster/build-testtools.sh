#!/usr/bin/env bash
# Build the test tools from the Go modules pinned in cluster/testtools/go.mod (checksums
# in go.sum) into a cache outside the repository:
#   kstatus   cluster/testtools/cmd/kstatus: sigs.k8s.io/cli-utils' kstatus result of
#             objects (stdin or a live cluster)
#   promtool  github.com/prometheus/prometheus/cmd/promtool (`promtool check rules`)
#   crds/     the Prometheus Operator's ServiceMonitor, PodMonitor and PrometheusRule
#             CRDs, from the module zip pinned in cluster/testtools/crds.sum
#
# A separate module from cluster/tools (the control plane): changing these pins never
# invalidates that cache. The cache directory is keyed by a hash of go.mod, go.sum,
# crds.sum, the kstatus sources and build_format. Prints the directory on its last line
# of stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod="$here/testtools"
cache_root="${SHARD_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shard-operator}"
build_format=1
key="$( (cd "$mod" && cat go.mod go.sum crds.sum $(find cmd -type f -name '*.go' | LC_ALL=C sort); \
         echo "$build_format") | sha256sum | cut -c1-16)"
out="$cache_root/testtools/$key"

if [ -f "$out/.complete" ]; then
  echo "test tools: cached in $out" >&2
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "test tools: 'go' is not on PATH; install Go >= 1.26.7" >&2; exit 1; }
mkdir -p "$out"
prom_version="$(awk '$1 == "github.com/prometheus/prometheus" { print $2; exit }' "$mod/go.mod")"
cliutils_version="$(awk '$1 == "sigs.k8s.io/cli-utils" { print $2; exit }' "$mod/go.mod")"
read -r crd_module crd_version crd_sum < <(grep -v '^#' "$mod/crds.sum" | head -1)

# name | package | ldflags
targets=(
  "kstatus|./cmd/kstatus|-s -w"
  "promtool|github.com/prometheus/prometheus/cmd/promtool|-s -w -X github.com/prometheus/common/version.Version=$prom_version -X github.com/prometheus/common/version.Branch=pinned"
)
echo "test tools: building ${#targets[@]} binaries into $out (cold: a few minutes on 2 cores)" >&2
start_all=$SECONDS
(cd "$mod" && go mod download) >&2
for t in "${targets[@]}"; do
  IFS='|' read -r name pkg ldflags <<<"$t"
  [ -x "$out/$name" ] && { echo "test tools: $name already built" >&2; continue; }
  echo "test tools: building $name ($pkg) ..." >&2
  t0=$SECONDS
  (cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$name.tmp" "$pkg") >&2
  mv "$out/$name.tmp" "$out/$name"
  echo "test tools: $name built in $((SECONDS - t0)) s" >&2
done

# The CRDs: the module zip, checked against the pinned hash (go's own check of the
# download, then ours of the h1: sum it reports).
info="$(cd "$mod" && GOFLAGS=-mod=mod go mod download -json "$crd_module@$crd_version")"
got_sum="$(printf '%s' "$info" | sed -n 's/^[[:space:]]*"Sum": "\(.*\)",*$/\1/p')"
dir="$(printf '%s' "$info" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')"
[ "$got_sum" = "$crd_sum" ] || { echo "test tools: $crd_module@$crd_version has sum $got_sum, pinned $crd_sum" >&2; exit 1; }
mkdir -p "$out/crds"
for kind in servicemonitors podmonitors prometheusrules; do
  cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$out/crds/"
done
chmod -R u+w "$out/crds"

printf 'cli-utils=%s\nprometheus=%s\nprometheus-operator=%s\nbuild_seconds=%s\n' \
  "$cliutils_version" "$prom_version" "$crd_version" "$((SECONDS - start_all))" >"$out/.complete"
echo "test tools: done in $((SECONDS - start_all)) s" >&2
echo "$out"
