"""What a Dockerfile's final stage declares, read for ``make images`` (images/build.sh)
and for the test that checks the built images (tests/images/test_image_config.py), so
that the Dockerfiles stay the one statement of each image:

- the OCI image config: USER, ENTRYPOINT, CMD, ENV, WORKDIR, EXPOSE, VOLUME;
- the directories it makes (each VOLUME and the WORKDIR), with the owner and mode its
  ``RUN ... chown``/``chmod`` give them;
- the pinned requirements its venv gets: the ``wanted = {...}`` names of a build stage
  that picks some of pyproject.toml's dependencies, or all of them.

Command line (used by images/build.sh)::

    python images/dockerfile_config.py umoci-args DOCKERFILE
    python images/dockerfile_config.py requirements DOCKERFILE PYPROJECT
    python images/dockerfile_config.py directories DOCKERFILE   # PATH UID GID MODE
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import tomllib
from pathlib import Path
from typing import Any

# the PATH a Dockerfile's ``$PATH`` stands for: Docker's default (the base images'
# /usr/local/bin is not used here, python3 is Debian's /usr/bin/python3)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def instructions(text: str) -> list[tuple[str, str]]:
    """Every (INSTRUCTION, arguments) of a Dockerfile, continuation lines joined,
    comments and parser directives left out."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # a comment or blank line inside a continuation is skipped too
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        result.append((word.upper(), rest.strip()))
    if pending:
        word, _, rest = pending.strip().partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


def final_stage(text: str) -> list[tuple[str, str]]:
    """The instructions of the last stage (after its ``FROM``)."""
    stage: list[tuple[str, str]] = []
    for word, argument in instructions(text):
        if word == "FROM":
            stage = []
        stage.append((word, argument))
    return stage


def _list(argument: str) -> list[str]:
    return json.loads(argument) if argument.startswith("[") else shlex.split(argument)


def image_config(text: str) -> dict[str, Any]:
    """``{"User", "Entrypoint", "Cmd", "Env", "WorkingDir", "ExposedPorts", "Volumes"}``
    in the OCI config's own shape (ENV as ``NAME=value`` strings, in order)."""
    env: dict[str, str] = {}
    config: dict[str, Any] = {"User": "", "Entrypoint": [], "Cmd": [], "WorkingDir": "",
                              "ExposedPorts": {}, "Volumes": {}}
    for word, argument in final_stage(text):
        if word == "ENV":
            for pair in shlex.split(argument):
                name, _, value = pair.partition("=")
                env[name] = re.sub(r"\$\{?PATH\}?", env.get("PATH", DEFAULT_PATH), value)
        elif word == "USER":
            config["User"] = argument
        elif word == "ENTRYPOINT":
            config["Entrypoint"] = _list(argument)
            config["Cmd"] = []  # as Docker does: ENTRYPOINT resets an inherited CMD
        elif word == "CMD":
            config["Cmd"] = _list(argument)
        elif word == "WORKDIR":
            config["WorkingDir"] = argument
        elif word == "EXPOSE":
            config["ExposedPorts"].update(
                {p if "/" in p else f"{p}/tcp": {} for p in argument.split()})
        elif word == "VOLUME":
            config["Volumes"].update({v: {} for v in _list(argument)})
    config["Env"] = [f"{name}={value}" for name, value in env.items()]
    return config


def directories(text: str) -> dict[str, dict[str, int]]:
    """Each VOLUME and the WORKDIR: ``{path: {"uid", "gid", "mode"}}``, owner and mode
    as the final stage's ``RUN`` lines set them with ``chown U:G PATH`` and
    ``chmod MODE PATH`` (root and 0755 otherwise)."""
    config = image_config(text)
    paths = list(config["Volumes"]) + ([config["WorkingDir"]] if config["WorkingDir"] else [])
    result = {p: {"uid": 0, "gid": 0, "mode": 0o755} for p in dict.fromkeys(paths)}
    for word, argument in final_stage(text):
        if word != "RUN":
            continue
        for command in re.split(r"&&|;", argument):
            args = shlex.split(command)
            if len(args) < 3:
                continue
            if args[0] == "chown":
                owner = args[-2].split(":")
                for path in args[-1:]:
                    if path in result:
                        result[path]["uid"] = int(owner[0])
                        result[path]["gid"] = int(owner[1] if len(owner) > 1 else owner[0])
            elif args[0] == "chmod" and args[-1] in result:
                result[args[-1]]["mode"] = int(args[-2], 8)
    return result


def requirements(text: str, pyproject: dict[str, Any]) -> list[str]:
    """The pinned requirements the image's venv gets: those of pyproject.toml's
    dependencies whose names a build stage lists as ``wanted = {...}`` (the server
    image), or all of them."""
    pins: list[str] = pyproject["project"]["dependencies"]
    match = re.search(r"wanted\s*=\s*\{([^}]*)\}", text)
    if not match:
        return list(pins)
    wanted = set(re.findall(r"['\"]([^'\"]+)['\"]", match.group(1)))
    chosen = [p for p in pins if re.split(r"[=<>!~\[; ]", p, maxsplit=1)[0].lower() in wanted]
    if len(chosen) != len(wanted):
        raise SystemExit(f"pyproject.toml pins {chosen}, the Dockerfile wants {sorted(wanted)}")
    return chosen


def umoci_arguments(config: dict[str, Any]) -> list[str]:
    """``umoci config`` flags that set ``config`` on a config that has none of it."""
    args = [f"--config.user={config['User']}"] if config["User"] else []
    args += [f"--config.entrypoint={part}" for part in config["Entrypoint"]]
    args += [f"--config.cmd={part}" for part in config["Cmd"]]
    args += [f"--config.env={pair}" for pair in config["Env"]]
    if config["WorkingDir"]:
        args.append(f"--config.workingdir={config['WorkingDir']}")
    args += [f"--config.exposedports={port}" for port in config["ExposedPorts"]]
    args += [f"--config.volume={volume}" for volume in config["Volumes"]]
    return args


def main(argv: list[str]) -> None:
    command, dockerfile = argv[0], Path(argv[1]).read_text()
    if command == "umoci-args":
        print("\n".join(umoci_arguments(image_config(dockerfile))))
    elif command == "requirements":
        with open(argv[2], "rb") as f:
            print("\n".join(requirements(dockerfile, tomllib.load(f))))
    elif command == "directories":
        for path, d in directories(dockerfile).items():
            print(path, d["uid"], d["gid"], oct(d["mode"])[2:].rjust(4, "0"))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
