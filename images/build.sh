#!/usr/bin/env bash
# make images: shard-server:<version>, shard-operator:<version> and the real node's
# sandbox image shard-operator-pause:<version>, built with no Docker engine and no
# registry, from Debian packages and the wheels pinned in pyproject.toml:
#
#   layer 1  a Debian bookworm root filesystem (mmdebstrap, variant essential, merged
#            /usr, no docs/man/locales; cached per package list, so both images share
#            the same layer and containerd stores it once);
#   layer 2  /opt/venv with the dependencies pinned in pyproject.toml, installed in that
#            root filesystem (chroot, pip from Debian's pip wheel, no index) from wheels
#            downloaded on the host for the image's Python and glibc; cached per
#            requirement set;
#   layer 3  the project's wheel installed into that venv, and the directories the
#            Dockerfile makes (/data, owned 65532, 0700, in the server image): all a
#            code change rebuilds;
#   config   what each Dockerfile's final stage declares (images/dockerfile_config.py).
#
# umoci makes the OCI layouts, skopeo writes them as docker archives named
# docker.io/library/<name>:<version> (the name Kubernetes gives `<name>:<version>`),
# which `ctr -n k8s.io images import` tags as such. Only skopeo's oci: and
# docker-archive: transports are used: nothing is pulled or pushed. The network is used
# only by mmdebstrap (the host's Debian mirror) and pip download (PyPI), and only when
# their caches are cold.
#
# Output: .images/<name>-<version>.tar and .images/images.json, a list of
#   {"name", "ref", "archive" (relative to the repository), "digest" (the image ID: the
#    digest of its config, the same in the OCI layout, the archive and containerd),
#    "size_bytes" (of the archive)}.
# Cached by its inputs (what goes into the wheel, the Dockerfiles, this script, the
# package list): an unchanged set prints "cached" and the digests.
#
# Needs root (mmdebstrap's root mode, chroot) and the Debian packages
#   mmdebstrap umoci skopeo gcc libc6-dev  (hack/node-deps.sh installs them).
# Environment: PYTHON (the host's python3 with pip), SHARD_OPERATOR_CACHE (default
# ~/.cache/shard-operator), IMAGES_FORCE=1 (rebuild even when cached), IMAGES_OUT
# (instead of .images/, for trying the build without touching the images in use),
# IMAGES_OVERLAY=no (copy the cached root filesystem instead of mounting an overlay).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
cache="${SHARD_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shard-operator}/images"
out="${IMAGES_OUT:-$repo/.images}"
python="${PYTHON:-python3}"
suite=bookworm
packages=(python3 python3-venv ca-certificates)
step="start"
t_all=$(date +%s%N)

say() { printf 'images: %s\n' "$*" >&2; }
fail() { say "FAILED in step '$step': $*"; exit 1; }
trap 'rc=$?; say "FAILED in step '"'"'$step'"'"': \`$BASH_COMMAND\` exited with $rc (images/build.sh line $LINENO)"; exit $rc' ERR
elapsed() { local ns=$(($(date +%s%N) - $1)); printf '%d.%d s' $((ns / 1000000000)) $((ns / 100000000 % 10)); }
# begin "[n/N] what": a line when a step starts; finish: a line with its time
begin() { step="$1"; t_step=$(date +%s%N); say "$1 ..."; }
finish() { say "$step: ${1:-done} in $(elapsed "$t_step")"; }

for tool in mmdebstrap umoci skopeo gcc git flock; do
  command -v "$tool" >/dev/null || fail "'$tool' is missing (hack/node-deps.sh installs the Debian packages mmdebstrap umoci skopeo gcc libc6-dev)"
done
[ "$(id -u)" -eq 0 ] || fail "needs root (mmdebstrap's root mode and chroot)"
"$python" -m pip --version >/dev/null 2>&1 || fail "$python has no pip (set PYTHON=.venv/bin/python)"
version="$("$python" -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')"

mkdir -p "$cache" "$out"
exec 9>"$cache/.lock"
flock -n 9 || { say "waiting for another make images to finish ($cache/.lock)"; flock 9; }

# ----- inputs ------------------------------------------------------------------------
# the build context of the Dockerfiles (Dockerfile.dockerignore): what goes into the wheel
mapfile -t context < <(git ls-files -co --exclude-standard -- pyproject.toml README.md \
  operator | LC_ALL=C sort -u | while read -r f; do [ -f "$f" ] && echo "$f"; done)
[ ${#context[@]} -gt 2 ] || fail "no sources found by git ls-files (not a git checkout?)"
recipe=(images/build.sh images/dockerfile_config.py images/pause/pause.c
        images/shard-server/Dockerfile images/operator/Dockerfile)
base_key="$( (echo "$suite ${packages[*]} $(uname -m)"; sed -n '/^# ----- base/,/^# ----- end base/p' images/build.sh) | sha256sum | cut -c1-16)"
inputs="$( (sha256sum "${context[@]}" "${recipe[@]}"; echo "$base_key") | sha256sum | cut -c1-16)"

print_images() {
  "$python" - "$out/images.json" <<'PY'
import json, sys
for i in json.load(open(sys.argv[1])):
    print(f"  {i['ref']:<48} {i['digest']}  {i['size_bytes'] / 1e6:6.1f} MB  {i['archive']}")
PY
}
all_archives_there() {
  "$python" -c 'import json, os, sys; sys.exit(not all(os.path.getsize(i["archive"]) == i["size_bytes"] for i in json.load(open(sys.argv[1]))))' "$out/images.json" 2>/dev/null
}
if [ "${IMAGES_FORCE:-}" != 1 ] && [ -f "$out/images.json" ] && \
   [ "$(cat "$out/.inputs" 2>/dev/null)" = "$inputs" ] && all_archives_there; then
  say "cached (inputs $inputs unchanged; IMAGES_FORCE=1 rebuilds)"
  print_images
  exit 0
fi
rm -f "$out/.inputs"
say "building ${version}: inputs $inputs (${#context[@]} files of the build context and ${#recipe[@]} of the recipe) hashed in $(elapsed "$t_all"); cache $cache"

work="$(mktemp -d /var/tmp/shard-images.XXXXXX)"
trap 'rm -rf "$work"' EXIT
export TMPDIR="$work"  # skopeo's and pip's temporary files

# ----- base: the Debian root filesystem and its OCI layer, cached per package list --
base="$cache/base-$base_key"
begin "[1/6] Debian $suite root filesystem: ${packages[*]}"
if [ -f "$base/done" ]; then
  finish "cached ($base)"
else
  rm -rf "$base" && mkdir -p "$base"
  mirror=()  # the host's Debian mirror when it is the usual deb822 file, else mmdebstrap's default
  [ -f /etc/apt/sources.list.d/debian.sources ] && mirror=(/etc/apt/sources.list.d/debian.sources)
  export SHARD_IMAGES_BASE="$base"
  # the Python of the image, for the wheels' tags: "3.11 manylinux_2_36_x86_64"
  export SHARD_IMAGES_TAGS_PY='import platform, sys
print(f"{sys.version_info[0]}.{sys.version_info[1]}",
      "manylinux_" + platform.libc_ver()[1].replace(".", "_") + "_" + platform.machine())'
  say "  mmdebstrap: the packages from the host's Debian mirror (about a minute; log: $base/mmdebstrap.log)"
  mmdebstrap --quiet --mode=root --format=tar --variant=essential \
    --include="$(IFS=,; echo "${packages[*]}")" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt=force-unsafe-io --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --customize-hook='chroot "$1" python3 -c "$SHARD_IMAGES_TAGS_PY" > "$SHARD_IMAGES_BASE/python-tags"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/apt "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old' \
    --customize-hook=': > "$1/etc/resolv.conf"; echo localhost > "$1/etc/hostname"' \
    "$suite" "$base/rootfs.tar" "${mirror[@]}" >"$work/mmdebstrap.log" 2>&1 ||
    { tail -n 30 "$work/mmdebstrap.log" >&2; cp "$work/mmdebstrap.log" "$base/"; fail "mmdebstrap failed (log above)"; }
  cp "$work/mmdebstrap.log" "$base/"
  # the layer: the same files without device nodes (the runtime makes /dev)
  mkdir "$work/base"
  tar -xf "$base/rootfs.tar" -C "$work/base"
  tar -cf "$work/base-layer.tar" -C "$work/base" --numeric-owner --xattrs --sort=name \
    --exclude='./dev/?*' .
  rm -rf "$work/base"
  umoci init --layout "$base/oci"
  umoci new --image "$base/oci:empty"
  umoci raw add-layer --image "$base/oci:empty" --tag base --history.author="make images" \
    --history.created_by="mmdebstrap --variant=essential $suite ${packages[*]}" "$work/base-layer.tar"
  umoci rm --image "$base/oci:empty"
  rm "$work/base-layer.tar"
  touch "$base/done"
  # the root filesystems of other package lists are not used any more
  find "$cache" -maxdepth 1 -name 'base-*' ! -name "base-$base_key" -exec rm -rf {} +
  finish
fi
# ----- end base
read -r python_version platform_tag <"$base/python-tags"

# ----- wheels: downloaded once per requirement set, then offline ---------------------
begin "[2/6] wheels of the pinned dependencies (Python $python_version, $platform_tag) and the project's wheel"
"$python" images/dockerfile_config.py requirements images/operator/Dockerfile pyproject.toml >"$work/shard-operator.txt"
"$python" images/dockerfile_config.py requirements images/shard-server/Dockerfile pyproject.toml >"$work/shard-server.txt"
"$python" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml","rb"))["build-system"]["requires"]))' >"$work/build-system.txt"
wheels="$cache/wheels"
# pip expands no manylinux tag: every one the image's glibc runs (manylinux_2_36 ... _2_5)
glibc_minor="${platform_tag#manylinux_2_}"; glibc_minor="${glibc_minor%%_*}"
arch="${platform_tag#manylinux_2_"${glibc_minor}"_}"
platforms=()
for ((minor = glibc_minor; minor >= 5; minor--)); do platforms+=(--platform "manylinux_2_${minor}_$arch"); done
platforms+=(--platform "manylinux2014_$arch" --platform "manylinux2010_$arch" --platform "manylinux1_$arch")
stamp="$wheels/.complete-$( (cat "$work/shard-operator.txt"; echo "$python_version $platform_tag") | sha256sum | cut -c1-16)"
build_stamp="$cache/build-wheels/.complete-$(sha256sum <"$work/build-system.txt" | cut -c1-16)"
downloaded=""
if [ ! -f "$stamp" ]; then
  mkdir -p "$wheels"
  "$python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    --python-version "$python_version" --implementation cp --abi "cp${python_version/./}" \
    "${platforms[@]}" -d "$wheels" -r "$work/shard-operator.txt"
  touch "$stamp"; downloaded=" (downloaded)"
fi
if [ ! -f "$build_stamp" ]; then
  mkdir -p "$cache/build-wheels"
  "$python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    -d "$cache/build-wheels" -r "$work/build-system.txt"
  touch "$build_stamp"; downloaded=" (downloaded)"
fi
# the project's wheel, built from a copy of the build context (no build/ in the checkout)
# in a venv of its build requirements (pyproject's build-system), cached
mkdir -p "$work/src" "$work/dist"
cp --parents -- "${context[@]}" "$work/src/"
build_venv="$cache/build-venv-$( ("$python" -c 'import sys; print(sys.version)'; cat "$work/build-system.txt") | sha256sum | cut -c1-16)"
if [ ! -f "$build_venv/done" ]; then
  rm -rf "$build_venv"
  "$python" -m venv "$build_venv"
  "$build_venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index \
    --find-links "$cache/build-wheels" -r "$work/build-system.txt"
  touch "$build_venv/done"
  find "$cache" -maxdepth 1 -name 'build-venv-*' ! -path "$build_venv" -exec rm -rf {} +
fi
"$build_venv/bin/python" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-index \
  --no-build-isolation -w "$work/dist" "$work/src" >&2
project_wheel="$(cd "$work/dist" && echo shard_operator-"$version"-*.whl)"
[ -f "$work/dist/$project_wheel" ] || fail "no wheel shard_operator-$version-*.whl was built"
finish "$(ls "$wheels"/*.whl | wc -l) wheels$downloaded, $project_wheel"

# copy_layout FROM TO: an OCI layout to add a layer to; its blobs (content-addressed,
# never written in place) as hard links, its index.json (rewritten by umoci) as a copy
copy_layout() {
  cp -al "$1" "$2"
  rm "$2/index.json"
  cp "$1/index.json" "$2/index.json"
}

# in_chroot ROOTFS [--userspec=U:G] COMMAND...: run in the image's root filesystem, with
# none of this host's environment (no PIP_*, no PYTHON*, no proxy)
in_chroot() {
  local rootfs="$1"; shift
  local spec=()
  [[ "$1" == --userspec=* ]] && { spec=("$1"); shift; }
  env -i PATH=/opt/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    chroot "${spec[@]}" "$rootfs" "$@"
}

# project_layer ROOTFS NAME WORK PIP_WHEEL PROJECT_WHEEL USER CHECK-COMMAND...: install the
# project's wheel into ROOTFS (which has the pinned dependencies), make the Dockerfile's
# directories ($WORK/NAME.dirs), run CHECK-COMMAND as USER and write the layer
# $WORK/NAME-layer.tar of what changed. Runs in a private mount namespace when ROOTFS is
# an overlay, so it needs its own copy of in_chroot, and reports errors by its status.
project_layer() {
  set -euo pipefail
  local rootfs="$1" name="$2" work="$3" pip_wheel="$4" project_wheel="$5" user="$6"; shift 6
  [ -z "${OVERLAY_LOWER:-}" ] || mount -t overlay overlay \
    -o "lowerdir=$OVERLAY_LOWER,upperdir=$work/$name-upper,workdir=$work/$name-overlay-work" "$rootfs"
  local pip=(/opt/venv/bin/python "/$pip_wheel/pip" --disable-pip-version-check --no-cache-dir)
  mkdir "$rootfs/tmp/wheels"
  cp "$work/dist/$project_wheel" "$rootfs/tmp/wheels/"
  touch "$work/$name.mark"
  # as each Dockerfile installs it: the server's wheel alone, the operator's with all of
  # its dependencies (here already installed: pip check says whether they fit)
  in_chroot "$rootfs" "${pip[@]}" install --quiet --no-index --no-deps "/tmp/wheels/$project_wheel"
  rm -rf "$rootfs/tmp/wheels"
  if [ "$name" = shard-operator ]; then
    in_chroot "$rootfs" "${pip[@]}" check >"$work/pip-check" ||
      { cat "$work/pip-check" >&2; echo "images: pip check: the pinned dependencies do not fit together" >&2; exit 1; }
  fi
  # the layer: what the project's install changed, and the Dockerfile's directories
  (cd "$rootfs" && find ./opt/venv -cnewer "$work/$name.mark") >"$work/$name.files"
  grep -q "/shard_operator/__init__.py$" "$work/$name.files" ||
    { echo "images: the project's files were not found in /opt/venv" >&2; exit 1; }
  local path uid gid mode
  while read -r path uid gid mode; do
    install -d -o "$uid" -g "$gid" -m "$mode" "$rootfs$path"
    echo ".$path" >>"$work/$name.files"
  done <"$work/$name.dirs"
  # the venv works, as the image's user
  in_chroot "$rootfs" --userspec="$user" "$@" >/dev/null
  LC_ALL=C sort -o "$work/$name.files" "$work/$name.files"
  tar -cf "$work/$name-layer.tar" -C "$rootfs" --numeric-owner --no-recursion -T "$work/$name.files"
}

# can this machine mount an overlay (in a private mount namespace)? Then a code change
# installs the project over the cached root filesystem instead of a copy of it.
overlay_works() {
  local t="$work/overlay-probe"
  mkdir -p "$cache/overlay-probe" "$t/upper" "$t/work" "$t/merged"
  unshare --mount --propagation private mount -t overlay overlay \
    -o "lowerdir=$cache/overlay-probe,upperdir=$t/upper,workdir=$t/work" "$t/merged" 2>/dev/null
}

# build_python_image N NAME DOCKERFILE CHECK-COMMAND...: three layers, the base, the
# pinned dependencies in /opt/venv (cached per requirement set with the root filesystem
# they were installed in: a code change rebuilds only the third), and the project (its
# files in /opt/venv, the Dockerfile's directories)
build_python_image() {
  local n="$1" name="$2" dockerfile="$3"; shift 3
  local layout="$work/$name-oci" requirements="$work/$name.txt"
  local deps
  deps="$cache/deps-$name-$( (echo "$base_key $python_version $platform_tag"; cat "$requirements"
    sed -n '/^  # ----- deps/,/^  # ----- end deps/p' images/build.sh) | sha256sum | cut -c1-16)"
  begin "[$n/6] $name: $(wc -l <"$requirements") pinned dependencies in /opt/venv"
  # ----- deps: the pinned dependencies' layer and root filesystem, cached
  if [ -f "$deps/done" ]; then
    finish "cached ($deps)"
  else
    rm -rf "$deps" && mkdir -p "$deps/rootfs"
    local rootfs="$deps/rootfs"
    tar -xf "$base/rootfs.tar" -C "$rootfs"
    mkdir "$rootfs/tmp/wheels"
    cp "$wheels"/*.whl "$requirements" "$rootfs/tmp/wheels/"
    # pip runs from Debian's pip wheel (python3-venv): the venv itself gets no pip
    in_chroot "$rootfs" python3 -m venv --without-pip /opt/venv
    in_chroot "$rootfs" /opt/venv/bin/python "/$(cd "$rootfs" && echo usr/share/python-wheels/pip-*.whl)/pip" \
      --disable-pip-version-check --no-cache-dir install --quiet --no-index --find-links /tmp/wheels \
      -r "/tmp/wheels/$name.txt"
    rm -rf "$rootfs/tmp/wheels"
    tar -cf "$work/$name-venv.tar" -C "$rootfs" --numeric-owner --sort=name ./opt/venv
    copy_layout "$base/oci" "$deps/oci"
    umoci raw add-layer --image "$deps/oci:base" --tag deps --history.author="make images" \
      --history.created_by="make images: /opt/venv, $(paste -sd' ' "$requirements")" "$work/$name-venv.tar"
    rm "$work/$name-venv.tar"
    touch "$deps/done"
    find "$cache" -maxdepth 1 -name "deps-$name-*" ! -path "$deps" -exec rm -rf {} +
    finish "$(du -sm "$rootfs/opt/venv" | cut -f1) MB"
  fi
  # ----- end deps
  begin "[$n/6] $name: the project's wheel, the Dockerfile's directories and config"
  "$python" images/dockerfile_config.py directories "$dockerfile" >"$work/$name.dirs"
  local user pip_wheel
  user="$("$python" images/dockerfile_config.py umoci-args "$dockerfile" | sed -n 's/^--config.user=//p')"
  pip_wheel="$(cd "$deps/rootfs" && echo usr/share/python-wheels/pip-*.whl)"
  [ -f "$deps/rootfs/$pip_wheel" ] || fail "no pip wheel in the base ($pip_wheel)"
  local args=("$work/$name-rootfs" "$name" "$work" "$pip_wheel" "$project_wheel" "${user:-0:0}" "$@")
  mkdir "$work/$name-rootfs"
  if [ "$overlay" = yes ]; then
    mkdir "$work/$name-upper" "$work/$name-overlay-work"
    OVERLAY_LOWER="$deps/rootfs" unshare --mount --propagation private \
      bash -c "$(declare -f in_chroot project_layer); project_layer \"\$@\"" _ "${args[@]}"
  else
    cp -a "$deps/rootfs/." "$work/$name-rootfs/"
    (project_layer "${args[@]}")
  fi
  rm -rf "$work/$name-rootfs" "$work/$name-upper" "$work/$name-overlay-work"
  copy_layout "$deps/oci" "$layout"
  umoci raw add-layer --image "$layout:deps" --tag "$version" --history.author="make images" \
    --history.created_by="make images: $project_wheel and the Dockerfile's directories" \
    "$work/$name-layer.tar"
  mapfile -t config < <("$python" images/dockerfile_config.py umoci-args "$dockerfile")
  umoci config --image "$layout:$version" --no-history "${config[@]}" \
    --author="shard-operator make images" --config.label="org.opencontainers.image.version=$version"
  finish "$(wc -l <"$work/$name.files") paths in the project's layer; '$*' runs as ${user:-root}"
}

unset OVERLAY_LOWER
overlay=no
[ "${IMAGES_OVERLAY:-}" = no ] || ! overlay_works || overlay=yes

archived=()
# write_archive NAME LAYOUT: .images/NAME-VERSION.tar named docker.io/library/NAME:VERSION
write_archive() {
  local name="$1" layout="$2" ref="docker.io/library/$1:$version"
  local archive="$out/$name-$version.tar"
  rm -f "$archive.tmp"
  skopeo --insecure-policy copy --quiet "oci:$layout:$version" "docker-archive:$archive.tmp:$ref" >&2
  mv "$archive.tmp" "$archive"
  archived+=("$name" "$ref" "$archive" "$layout")
}

build_python_image 3 shard-server images/shard-server/Dockerfile shard-server --help
build_python_image 4 shard-operator images/operator/Dockerfile shard-operator run --help

begin "[5/6] shard-operator-pause: static /pause (images/pause/pause.c), user 65535"
mkdir -p "$work/pause-rootfs"
gcc -static -Os -s -Wall -Werror -o "$work/pause-rootfs/pause" images/pause/pause.c
tar -cf "$work/pause-layer.tar" -C "$work/pause-rootfs" --numeric-owner --owner=0 --group=0 ./pause
umoci init --layout "$work/pause-oci"
umoci new --image "$work/pause-oci:$version"
umoci raw add-layer --image "$work/pause-oci:$version" --history.author="make images" \
  --history.created_by="gcc -static -Os images/pause/pause.c" "$work/pause-layer.tar"
umoci config --image "$work/pause-oci:$version" --no-history --config.user=65535:65535 \
  --config.entrypoint=/pause --author="shard-operator make images"
finish "$(stat -c %s "$work/pause-rootfs/pause") bytes"

begin "[6/6] archives (skopeo: oci: to docker-archive:, nothing pulled or pushed)"
write_archive shard-server "$work/shard-server-oci"
write_archive shard-operator "$work/shard-operator-oci"
write_archive shard-operator-pause "$work/pause-oci"
"$python" - "$out/images.json" "$repo" "$version" "${archived[@]}" <<'PY'
import json, os, sys
path, repo, version, rest = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
images = []
for name, ref, archive, layout in zip(*[iter(rest)] * 4):
    index = json.load(open(os.path.join(layout, "index.json")))
    (entry,) = [m for m in index["manifests"]
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == version]
    algorithm, digest = entry["digest"].split(":")
    manifest = json.load(open(os.path.join(layout, "blobs", algorithm, digest)))
    if os.path.commonpath([repo, archive]) == repo:
        archive = os.path.relpath(archive, repo)  # relative to the repository's root
    images.append({"name": name, "ref": ref, "archive": archive,
                   "digest": manifest["config"]["digest"],
                   "size_bytes": os.path.getsize(archive)})
    compressed = sum(layer["size"] for layer in manifest["layers"]) + manifest["config"]["size"]
    print(f"images: {name}: {len(manifest['layers'])} layers, {compressed / 1e6:.1f} MB compressed"
          f" (gzip, as a registry would hold it), {os.path.getsize(archive) / 1e6:.1f} MB archive",
          file=sys.stderr)
with open(path + ".tmp", "w") as f:
    json.dump(images, f, indent=2)
    f.write("\n")
os.replace(path + ".tmp", path)
# archives of other versions are no longer listed
listed = {os.path.basename(i["archive"]) for i in images}
for stale in os.listdir(os.path.dirname(path)):
    if stale.endswith(".tar") and stale not in listed:
        os.remove(os.path.join(os.path.dirname(path), stale))
PY
finish
echo "$inputs" >"$out/.inputs"
say "built in $(elapsed "$t_all"):"
print_images
