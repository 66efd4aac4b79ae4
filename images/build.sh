#!/usr/bin/env bash
# make images: shard-server:<version>, shard-operator:<version> and the real node's
# sandbox image, built with no Docker engine and no registry:
#   a Debian bookworm root filesystem (mmdebstrap, Debian packages only; cached per
#   package list), a venv with the dependencies pinned in pyproject.toml from wheels
#   downloaded on the host (cached), the project's wheel, and the OCI config each
#   Dockerfile's final stage declares (images/dockerfile_config.py), packed by umoci
#   and written by skopeo as docker archives under .images/, listed in .images/images.json.
# Cached by its inputs: an unchanged set prints "cached" and the digests.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
cache="${SHARD_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shard-operator}/images"
out="$repo/.images"
python="${PYTHON:-python3}"
version="$("$python" -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')"
base_packages="python3,python3-venv,ca-certificates"
t_all=$SECONDS
say() { printf 'images: %s\n' "$*" >&2; }
step_start() { t_step=$SECONDS; say "$*"; }
step_done() { say "  ... $((SECONDS - t_step)) s"; }

for tool in mmdebstrap umoci skopeo gcc; do
  command -v "$tool" >/dev/null || { say "'$tool' is missing (make node-deps installs it)"; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { say "mmdebstrap's root mode and chroot need root"; exit 1; }

inputs="$( (cat images/build.sh images/dockerfile_config.py images/pause/pause.c \
  images/*/Dockerfile pyproject.toml README.md; echo "$base_packages";
  git ls-files -co --exclude-standard operator cluster/localcluster | LC_ALL=C sort | xargs cat) \
  | sha256sum | cut -c1-16)"
if [ -f "$out/images.json" ] && [ "$(cat "$out/.inputs" 2>/dev/null)" = "$inputs" ]; then
  say "cached (inputs $inputs)"
  "$python" -c 'import json,sys; [print(f"{i["ref"]}  {i["digest"]}  {i["size_bytes"]/1e6:.1f} MB") for i in json.load(open(sys.argv[1]))]' "$out/images.json"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$cache/wheels" "$out"

step_start "[1/5] wheels of the pinned dependencies (cache: $cache/wheels)"
"$python" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml","rb"))["project"]["dependencies"]))' >"$work/operator-requirements.txt"
grep -iE '^(aiohttp|click|prometheus-client|python-json-logger)==' "$work/operator-requirements.txt" >"$work/server-requirements.txt"
"$python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
  -d "$cache/wheels" -r "$work/operator-requirements.txt"
"$python" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$work/project" . 2>/dev/null
step_done

base="$cache/base-$(echo "$base_packages" | sha256sum | cut -c1-12).tar"
if [ ! -f "$base" ]; then
  step_start "[2/5] Debian bookworm root filesystem ($base_packages) with mmdebstrap"
  mmdebstrap --quiet --format=tar --variant=minbase --include="$base_packages" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bookworm "$base.tmp" >&2
  mv "$base.tmp" "$base"
  step_done
else
  say "[2/5] Debian root filesystem: cached ($base)"
fi

# pip in the chroot reads no configuration of this host's
export PIP_CONFIG_FILE=/dev/null
unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL

# build_python_image NAME DOCKERFILE REQUIREMENTS CHECK-COMMAND...
build_python_image() {
  local name="$1" dockerfile="$2" requirements="$3"; shift 3
  local layout="$work/$name-oci" bundle="$work/$name-bundle" rootfs
  step_start "[$name] root filesystem, venv, wheels"
  umoci init --layout "$layout"
  umoci new --image "$layout:$version"
  umoci unpack --image "$layout:$version" "$bundle" >/dev/null
  rootfs="$bundle/rootfs"
  tar -xf "$base" -C "$rootfs"
  mkdir -p "$rootfs/tmp/wheels"
  cp "$cache/wheels"/* "$work/project"/*.whl "$requirements" "$rootfs/tmp/wheels/"
  chroot "$rootfs" /usr/bin/python3 -m venv /opt/venv
  chroot "$rootfs" /opt/venv/bin/pip install --quiet --disable-pip-version-check --no-index \
    --find-links /tmp/wheels -r "/tmp/wheels/$(basename "$requirements")"
  local wheel
  wheel="$(cd "$work/project" && ls shard_operator-*.whl)"
  chroot "$rootfs" /opt/venv/bin/pip install --quiet --disable-pip-version-check --no-index \
    --no-deps "/tmp/wheels/$wheel"
  chroot "$rootfs" /opt/venv/bin/pip uninstall --quiet --yes pip setuptools >/dev/null 2>&1 || true
  rm -rf "$rootfs/tmp/wheels" "$rootfs/root/.cache"
  find "$rootfs/opt/venv" -name __pycache__ -prune -exec rm -rf {} +
  chroot "$rootfs" env PATH=/opt/venv/bin:/usr/bin:/bin "$@" >/dev/null
  if grep -q '^VOLUME \["/data"\]' "$dockerfile"; then
    install -d -m 0700 -o 65532 -g 65532 "$rootfs/data"
  fi
  step_done
  step_start "[$name] layer and config (umoci), archive (skopeo)"
  umoci repack --image "$layout:$version" "$bundle"
  mapfile -t config < <("$python" images/dockerfile_config.py "$dockerfile")
  umoci config --image "$layout:$version" "${config[@]}" --author="shard-operator make images"
  write_archive "$name" "$layout"
  step_done
}

write_archive() {
  local name="$1" layout="$2" ref="docker.io/library/$1:$version"
  skopeo copy --quiet "oci:$layout:$version" "docker-archive:$out/$name-$version.tar.tmp:$ref"
  mv "$out/$name-$version.tar.tmp" "$out/$name-$version.tar"
  local digest
  digest="$(skopeo inspect --format '{{.Digest}}' "oci:$layout:$version")"
  printf '%s\t%s\t%s\t%s\n' "$name" "$ref" ".images/$name-$version.tar" "$digest" >>"$work/built.tsv"
}

step_start "[3/5] shard-server"
build_python_image shard-server images/shard-server/Dockerfile "$work/server-requirements.txt" \
  shard-server --help
step_start "[4/5] shard-operator"
build_python_image shard-operator images/operator/Dockerfile "$work/operator-requirements.txt" \
  shard-operator run --help

step_start "[5/5] shard-operator-pause (static C, the real node's sandbox image)"
layout="$work/pause-oci"
umoci init --layout "$layout"
umoci new --image "$layout:$version"
umoci unpack --image "$layout:$version" "$work/pause-bundle" >/dev/null
gcc -static -Os -s -o "$work/pause-bundle/rootfs/pause" images/pause/pause.c
umoci repack --image "$layout:$version" "$work/pause-bundle"
umoci config --image "$layout:$version" --config.user=65535:65535 --config.entrypoint=/pause
write_archive shard-operator-pause "$layout"
step_done

"$python" - "$work/built.tsv" "$out/images.json" <<'PY'
import json, os, sys
images = []
for line in open(sys.argv[1]):
    name, ref, archive, digest = line.rstrip("\n").split("\t")
    images.append({"name": name, "ref": ref, "archive": archive, "digest": digest,
                   "size_bytes": os.path.getsize(archive)})
json.dump(images, open(sys.argv[2], "w"), indent=2)
for i in images:
    print(f"{i['ref']}  {i['digest']}  {i['size_bytes'] / 1e6:.1f} MB")
PY
echo "$inputs" >"$out/.inputs"
say "done in $((SECONDS - t_all)) s"
