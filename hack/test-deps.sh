#!/usr/bin/env bash
# Install the Debian packages the tests need beyond the real node's (hack/node-deps.sh):
# Lua interpreters for the Argo CD health check (docs/argocd/health-shardset.lua). Argo
# CD runs health checks in gopher-lua, a Lua 5.1; the test runs the script under 5.1 and
# 5.4. A no-op when all are present. Not root, or not Debian: says what is missing and
# exits 0 (the tests that need them then fail) -- except under CI, where it fails.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/apt-deps.sh" test-deps \
  "tests/deploy/test_gitops_health.py will fail without them" \
  lua5.1 lua5.4
