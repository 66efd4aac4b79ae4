#!/usr/bin/env bash
# Install what the real node and `make images` need from Debian's packages: containerd,
# runc, the CNI plugins, mmdebstrap, umoci, skopeo (and the few tools they call).
# A no-op when all are present. Not root, or not Debian: says what is then missing and
# exits 0, so that the KWOK-only cluster still works -- except under CI, where it fails.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/apt-deps.sh" node-deps \
  "without them the real node does not start and the images are not built; the cluster runs on KWOK nodes only (no shard answers a request)" \
  containerd runc containernetworking-plugins mmdebstrap umoci skopeo iproute2 \
  mount util-linux gcc libc6-dev
