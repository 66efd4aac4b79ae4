"""The test tools of cluster/testtools (kstatus, promtool, the Prometheus Operator CRDs)
and the Lua interpreters for the Argo CD health check. Built or found, never skipped:
a missing tool fails the test that needs it."""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO / "cluster" / "build-testtools.sh"
ARGOCD_HEALTH = REPO / "docs" / "argocd" / "health-shardset.lua"
FIXTURES = REPO / "tests" / "fixtures" / "shardset-status"
# Argo CD runs health scripts in gopher-lua (Lua 5.1); 5.4 checks nothing newer breaks it.
LUA_INTERPRETERS = ("lua5.1", "lua5.4")


@functools.cache
def built_testtools() -> Path:
    """cluster/build-testtools.sh's cache directory (built on first use)."""
    override = os.environ.get("SHARD_OPERATOR_TESTTOOLS_DIR")
    if override:
        return Path(override)
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True,
                            check=False, timeout=3600)
    assert result.returncode == 0, f"{BUILD_SCRIPT} failed with exit code {result.returncode}"
    directory = Path(result.stdout.strip().splitlines()[-1])
    for name in ("kstatus", "promtool"):
        assert (directory / name).is_file(), f"{name} missing in {directory}"
    return directory


def kstatus(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """kstatus's result for each object (JSON on the tool's stdin), in order."""
    stream = "\n".join(json.dumps(o) for o in objects)
    result = subprocess.run([str(built_testtools() / "kstatus")], input=stream,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"kstatus failed: {result.stderr}"
    return [json.loads(line) for line in result.stdout.splitlines()]


def kstatus_live(kubeconfig: Path, resource: str, namespace: str = "", *names: str,
                 watch_seconds: float | None = None) -> list[dict[str, Any]]:
    """kstatus's result for live objects: a list, or with ``watch_seconds`` the list and
    then every watch event until that time has passed."""
    args = [str(built_testtools() / "kstatus"), f"--kubeconfig={kubeconfig}",
            f"--resource={resource}", f"-n={namespace}"]
    if watch_seconds is not None:
        args += ["--watch", f"--timeout={watch_seconds}s"]
    result = subprocess.run([*args, *names], capture_output=True, text=True, check=False,
                            timeout=(watch_seconds or 0) + 60)
    assert result.returncode == 0, f"kstatus failed: {result.stderr}"
    return [json.loads(line) for line in result.stdout.splitlines()]


def promtool(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(built_testtools() / "promtool"), *args], input=input,
                          capture_output=True, text=True, timeout=120, check=False)


def prometheus_operator_crds() -> list[Path]:
    crds = sorted((built_testtools() / "crds").glob("monitoring.coreos.com_*.yaml"))
    assert len(crds) == 3, f"Prometheus Operator CRDs missing in {built_testtools()}"
    return crds


def lua_literal(value: Any) -> str:
    """A JSON value as a Lua expression, the way Argo CD hands objects to Lua: objects
    become tables with string keys, arrays sequences from 1, null an absent value."""
    if value is None:
        return "nil"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        assert math.isfinite(value)
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid Lua escapes for ASCII
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{json.dumps(k)}] = {lua_literal(v)}"
                               for k, v in value.items() if v is not None) + "}"
    raise TypeError(type(value))


HARNESS = """
obj = %s
local check = assert(loadfile(%s))
local hs = check()
assert(type(hs) == "table", "the script returned no table")
io.write(tostring(hs.status), "\\t", tostring(hs.message), "\\n")
"""


def lua_interpreter(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed (hack/test-deps.sh installs it)"
    return path


def argocd_health(obj: dict[str, Any], interpreter: str = "lua5.1",
                  script: Path = ARGOCD_HEALTH) -> tuple[str, str]:
    """(status, message) of the Argo CD health script for ``obj``, run under a real Lua."""
    program = HARNESS % (lua_literal(obj), json.dumps(str(script)))
    result = subprocess.run([lua_interpreter(interpreter), "-"], input=program,
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, f"{interpreter}: {result.stderr}"
    status, message = result.stdout.rstrip("\n").split("\t", 1)
    return status, message


def fixtures() -> dict[str, dict[str, Any]]:
    """The recorded ShardSet status cases: {name: {"object", "expect", ...}}."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*.json"))}
