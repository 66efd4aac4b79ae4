#!/usr/bin/env bash
# Shared by hack/node-deps.sh and hack/test-deps.sh: install the Debian packages named
# after NAME that are missing. A no-op when all are present. Not root, or not Debian:
# prints what is missing and WITHOUT (what then does not work) and exits 0 -- except
# under CI, where it fails.
#   apt-deps.sh NAME WITHOUT PACKAGE...
set -euo pipefail
name="$1" without="$2"
shift 2
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
fail() {
  echo "$name: $*" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  echo "$name: $without" >&2
  exit 0
}
[ "$(id -u)" -eq 0 ] || fail "not root: cannot install ${missing[*]}"
command -v apt-get >/dev/null || fail "no apt-get: install ${missing[*]} by hand"
echo "$name: installing ${missing[*]} (Debian packages)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
