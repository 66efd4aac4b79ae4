#!/usr/bin/env bash
# Install what the real node and `make images` need from Debian's packages: containerd,
# runc, the CNI plugins, mmdebstrap, umoci, skopeo (and the few tools they call).
# A no-op when all are present. Not root, or not Debian: says what is then missing and
# exits 0, so that the KWOK-only cluster still works -- except under CI, where it fails.
set -euo pipefail
packages=(containerd runc containernetworking-plugins mmdebstrap umoci skopeo iproute2
          mount util-linux gcc libc6-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
fail() {
  echo "node-deps: $*" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  echo "node-deps: without them the real node does not start and the images are not built;" \
       "the cluster runs on KWOK nodes only (no shard answers a request)" >&2
  exit 0
}
[ "$(id -u)" -eq 0 ] || fail "not root: cannot install ${missing[*]}"
command -v apt-get >/dev/null || fail "no apt-get: install ${missing[*]} by hand"
echo "node-deps: installing ${missing[*]} (Debian packages)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
