"""The images ``make images`` built carry what their Dockerfiles declare.

Reads each docker archive listed in ``.images/images.json`` (its manifest.json, config
JSON and layers, with tarfile) and compares it with the final stage of its Dockerfile,
as ``images/dockerfile_config.py`` reads it: USER, ENTRYPOINT, CMD, ENV, WORKDIR, EXPOSE,
VOLUME, the directories it makes with their owner and mode, and the pinned dependencies
in the venv. No expected value is written here a second time.

Without ``.images/images.json`` these tests fail under CI and skip elsewhere (run
``make images``). The parser's own tests need no image.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import stat
import struct
import tarfile
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / ".images" / "images.json"
DOCKERFILES = {"shard-server": REPO / "images/shard-server/Dockerfile",
               "shard-operator": REPO / "images/operator/Dockerfile"}
PAUSE = "shard-operator-pause"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]

_spec = importlib.util.spec_from_file_location("dockerfile_config",
                                               REPO / "images/dockerfile_config.py")
assert _spec and _spec.loader
dockerfile_config = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dockerfile_config)


def _missing(message: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true"):
        pytest.fail(f"{message}: under CI the images must have been built (make images)")
    pytest.skip(f"{message}: run 'make images'")


@cache
def _listed() -> dict[str, dict[str, Any]]:
    return {image["name"]: image for image in json.loads(MANIFEST.read_text())}


def listed() -> dict[str, dict[str, Any]]:
    if not MANIFEST.is_file():
        _missing(f"{MANIFEST.relative_to(REPO)} is missing")
    return _listed()


class Archive:
    """A docker archive (``docker save`` format): its manifest, config and layers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with tarfile.open(path) as tar:
            (self.manifest,) = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
            self.config_bytes = tar.extractfile(self.manifest["Config"]).read()  # type: ignore[union-attr]
        self.config = json.loads(self.config_bytes)

    @property
    def files(self) -> dict[str, tarfile.TarInfo]:
        """Every path of the image's filesystem (the layers applied in order, without
        whiteouts, which these images do not use), ``/``-rooted."""
        if not hasattr(self, "_files"):
            files: dict[str, tarfile.TarInfo] = {}
            with tarfile.open(self.path) as tar:
                for layer in self.manifest["Layers"]:
                    with tarfile.open(fileobj=tar.extractfile(layer)) as members:
                        for member in members:
                            files["/" + member.name.removeprefix("./").rstrip("/")] = member
            self._files = files
        return self._files

    def read(self, path: str) -> bytes:
        with tarfile.open(self.path) as tar:
            for layer in reversed(self.manifest["Layers"]):
                with tarfile.open(fileobj=tar.extractfile(layer)) as members:
                    for member in members:
                        if "/" + member.name.removeprefix("./") == path:
                            return members.extractfile(member).read()  # type: ignore[union-attr]
        raise FileNotFoundError(path)


@cache
def _archive(name: str) -> Archive:
    return Archive(REPO / _listed()[name]["archive"])


def archive(name: str) -> Archive:
    images = listed()
    if name not in images:
        _missing(f"{MANIFEST.relative_to(REPO)} lists no {name}")
    path = REPO / images[name]["archive"]
    if not path.is_file():
        _missing(f"{path.relative_to(REPO)} is missing")
    return _archive(name)


# ----- images.json ----------------------------------------------------------------------

def test_images_json_lists_the_three_images_in_its_format() -> None:
    images = listed()
    assert set(images) == {*DOCKERFILES, PAUSE}
    for name, image in images.items():
        assert set(image) == {"name", "ref", "archive", "digest", "size_bytes"}
        assert image["ref"] == f"docker.io/library/{name}:{VERSION}"
        assert image["archive"] == f".images/{name}-{VERSION}.tar"
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", image["digest"])
        path = REPO / image["archive"]
        assert path.is_file() and path.stat().st_size == image["size_bytes"]


@pytest.mark.parametrize("name", [*sorted(DOCKERFILES), PAUSE])
def test_archive_is_named_by_its_ref_and_has_the_listed_digest(name: str) -> None:
    built = archive(name)
    image = listed()[name]
    # `ctr images import` names the image by RepoTags: docker.io/library/<name>:<version>
    assert built.manifest["RepoTags"] == [image["ref"]]
    # the digest listed is the image ID: the digest of the config
    assert image["digest"] == "sha256:" + hashlib.sha256(built.config_bytes).hexdigest()
    assert built.config["os"] == "linux"
    assert len(built.config["rootfs"]["diff_ids"]) == len(built.manifest["Layers"])


# ----- what the Dockerfiles declare -----------------------------------------------------

@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_config_is_what_the_dockerfile_declares(name: str) -> None:
    declared = dockerfile_config.image_config(DOCKERFILES[name].read_text())
    actual = archive(name).config["config"]
    assert declared["User"], "the Dockerfile declares no USER"
    assert actual.get("User", "") == declared["User"]
    assert actual.get("Entrypoint") == declared["Entrypoint"]
    assert (actual.get("Cmd") or []) == declared["Cmd"]
    assert actual.get("Env") == declared["Env"]
    assert actual.get("WorkingDir", "") == declared["WorkingDir"]
    assert (actual.get("ExposedPorts") or {}) == declared["ExposedPorts"]
    assert (actual.get("Volumes") or {}) == declared["Volumes"]


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_directories_have_the_owner_and_mode_the_dockerfile_gives(name: str) -> None:
    declared = dockerfile_config.directories(DOCKERFILES[name].read_text())
    files = archive(name).files
    for path, want in declared.items():
        assert path in files, f"{path} is not in the {name} image"
        member = files[path]
        assert member.isdir(), path
        assert (member.uid, member.gid, stat.S_IMODE(member.mode)) == (
            want["uid"], want["gid"], want["mode"]), path


def _distributions(files: dict[str, tarfile.TarInfo]) -> dict[str, str]:
    """``{normalised name: version}`` of the venv's ``*.dist-info`` directories."""
    found = {}
    for path in files:
        match = re.fullmatch(
            r"/opt/venv/lib/python3\.\d+/site-packages/([^/]+)-([^-/]+)\.dist-info", path)
        if match:
            found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return found


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_venv_holds_the_pinned_requirements_the_dockerfile_installs(name: str) -> None:
    dockerfile = DOCKERFILES[name].read_text()
    wanted = dockerfile_config.requirements(dockerfile, PYPROJECT)
    pinned = {re.sub(r"[-_.]+", "-", pin.split("==")[0]).lower(): pin.split("==")[1]
              for pin in PYPROJECT["project"]["dependencies"]}
    installed = _distributions(archive(name).files)
    assert installed.get("shard-operator") == VERSION
    for dist, version in pinned.items():
        if any(re.sub(r"[-_.]+", "-", w.split("==")[0]).lower() == dist for w in wanted):
            assert installed.get(dist) == version, f"{dist}=={version} not in {name}"
        else:
            assert dist not in installed, f"{dist} is in {name}, its Dockerfile leaves it out"
    # the entry points the Dockerfiles run
    assert f"/opt/venv/bin/{dockerfile_config.image_config(dockerfile)['Entrypoint'][0]}" in \
        archive(name).files


def test_pause_image_runs_a_static_pause_as_65535() -> None:
    built = archive(PAUSE)
    assert built.config["config"].get("User") == "65535:65535"
    assert built.config["config"].get("Entrypoint") == ["/pause"]
    member = built.files["/pause"]
    assert member.isfile() and member.mode & 0o111
    binary = built.read("/pause")
    assert binary[:5] == b"\x7fELF\x02"  # 64-bit ELF
    # static: no program header asks for an interpreter (PT_INTERP, 3)
    phoff, = struct.unpack_from("<Q", binary, 32)
    phentsize, phnum = struct.unpack_from("<HH", binary, 54)
    types = [struct.unpack_from("<I", binary, phoff + i * phentsize)[0] for i in range(phnum)]
    assert types and 3 not in types, "/pause is not static"


# ----- the Dockerfile reader itself (no image needed) -----------------------------------

SAMPLE = """\
# syntax=docker/dockerfile:1
ARG BASE=python:3.11-slim
FROM ${BASE} AS build
ENV A=1
USER 1:1
CMD ["python3"]
RUN python -c "wanted = {'b', 'a'}" \\
 && true

FROM ${BASE}
ENV PATH=/opt/venv/bin:$PATH \\
    # a comment inside a continuation
    X="two words"
RUN mkdir -p /data /w && chown 7:8 /data && chmod 0700 /data
WORKDIR /w
USER 7:8
EXPOSE 8080 9090/udp
VOLUME ["/data"]
ENTRYPOINT ["srv", "--port", "8080"]
"""


def test_reader_takes_the_final_stage_only() -> None:
    config = dockerfile_config.image_config(SAMPLE)
    assert config == {
        "User": "7:8",
        "Entrypoint": ["srv", "--port", "8080"],
        "Cmd": [],
        "Env": [f"PATH=/opt/venv/bin:{dockerfile_config.DEFAULT_PATH}", "X=two words"],
        "WorkingDir": "/w",
        "ExposedPorts": {"8080/tcp": {}, "9090/udp": {}},
        "Volumes": {"/data": {}},
    }


def test_reader_gives_directories_their_chown_and_chmod() -> None:
    assert dockerfile_config.directories(SAMPLE) == {
        "/data": {"uid": 7, "gid": 8, "mode": 0o700},
        "/w": {"uid": 0, "gid": 0, "mode": 0o755},
    }


def test_reader_picks_the_wanted_pins_or_all() -> None:
    pyproject = {"project": {"dependencies": ["a==1", "b==2", "c==3"]}}
    assert dockerfile_config.requirements(SAMPLE, pyproject) == ["a==1", "b==2"]
    assert dockerfile_config.requirements("FROM x\n", pyproject) == ["a==1", "b==2", "c==3"]
    with pytest.raises(SystemExit):
        dockerfile_config.requirements(SAMPLE, {"project": {"dependencies": ["a==1"]}})


def test_umoci_arguments_set_every_declared_field() -> None:
    args = dockerfile_config.umoci_arguments(dockerfile_config.image_config(SAMPLE))
    assert args == [
        "--config.user=7:8",
        "--config.entrypoint=srv", "--config.entrypoint=--port", "--config.entrypoint=8080",
        f"--config.env=PATH=/opt/venv/bin:{dockerfile_config.DEFAULT_PATH}",
        "--config.env=X=two words",
        "--config.workingdir=/w",
        "--config.exposedports=8080/tcp", "--config.exposedports=9090/udp",
        "--config.volume=/data",
    ]
