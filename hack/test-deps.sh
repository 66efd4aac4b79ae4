#!/usr/bin/env bash
# Install the Debian packages the tests need beyond the real node's (hack/node-deps.sh):
# Lua interpreters for the Argo CD health check (docs/argocd/health-shardset.lua). Argo
# CD runs health checks in gopher-lua, a Lua 5.1; the test runs the script under 5.1 and
# 5.4. A no-op when all are present. Not root, or not Debian: says what is missing and
# exits 0 (the tests that need them then fail) -- except under CI, where it fails.
set -euo pipefail
packages=(lua5.1 lua5.4)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
fail() {
  echo "test-deps: $*" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  echo "test-deps: tests/deploy/test_argocd_health.py will fail without them" >&2
  exit 0
}
[ "$(id -u)" -eq 0 ] || fail "not root: cannot install ${missing[*]}"
command -v apt-get >/dev/null || fail "no apt-get: install ${missing[*]} by hand"
echo "test-deps: installing ${missing[*]} (Debian packages)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
