"""The OCI image config a Dockerfile's final stage declares (USER, ENTRYPOINT, CMD, ENV,
WORKDIR, EXPOSE, VOLUME): ``make images`` applies it with umoci, and a test checks the
built images against it, so the Dockerfiles stay the one statement of each image."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any


def final_stage(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the last stage, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            instructions = []
        instructions.append((word.upper(), rest.strip()))
    return instructions


def _list(argument: str) -> list[str]:
    return json.loads(argument) if argument.startswith("[") else shlex.split(argument)


def image_config(path: Path) -> dict[str, Any]:
    """``{"User", "Entrypoint", "Cmd", "Env", "WorkingDir", "ExposedPorts", "Volumes"}``
    in the OCI config's own shape (ENV as ``NAME=value`` strings, in order)."""
    env: dict[str, str] = {}
    config: dict[str, Any] = {"User": "", "Entrypoint": [], "Cmd": [], "WorkingDir": "",
                              "ExposedPorts": {}, "Volumes": {}}
    for word, argument in final_stage(path):
        if word == "ENV":
            for pair in shlex.split(argument):
                name, _, value = pair.partition("=")
                env[name] = value.replace("$PATH", "/usr/local/sbin:/usr/local/bin:"
                                          "/usr/sbin:/usr/bin:/sbin:/bin")
        elif word == "USER":
            config["User"] = argument
        elif word == "ENTRYPOINT":
            config["Entrypoint"] = _list(argument)
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


def umoci_arguments(config: dict[str, Any]) -> list[str]:
    """``umoci config`` flags that set ``config``."""
    args = [f"--config.user={config['User']}"]
    args += [f"--config.entrypoint={part}" for part in config["Entrypoint"]]
    args += [f"--config.cmd={part}" for part in config["Cmd"]] or ["--clear=config.cmd"]
    args += [f"--config.env={pair}" for pair in config["Env"]]
    if config["WorkingDir"]:
        args.append(f"--config.workingdir={config['WorkingDir']}")
    args += [f"--config.exposedports={port}" for port in config["ExposedPorts"]]
    args += [f"--config.volume={volume}" for volume in config["Volumes"]]
    return args


if __name__ == "__main__":
    print("\n".join(umoci_arguments(image_config(Path(sys.argv[1])))))
