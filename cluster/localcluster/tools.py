"""Where the control plane's binaries come from.

They are built from the Go modules pinned in ``cluster/tools/go.mod`` by
``cluster/build-tools.sh`` into a cache outside the repository, keyed by version; a
warm cache is only checked.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "cluster" / "build-tools.sh"
# The binaries of each module set that build-tools.sh builds.
BINARIES = {
    "tools": ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
              "kubelet", "kwok", "helm"),
    "storage": ("local-path-provisioner",),
}


class ToolsError(RuntimeError):
    """The binaries could not be built or found."""


def ensure_tools(module_set: str = "tools") -> Path:
    """Build (or find cached) the binaries of ``module_set`` (``tools``: the control
    plane, kubelet, KWOK, Helm; ``storage``: the local-path provisioner) and return the
    directory holding them."""
    override = os.environ.get("SHARD_OPERATOR_TOOLS_DIR") if module_set == "tools" else None
    if override:
        directory = Path(override)
    else:
        # stderr passes through so a cold build shows its progress.
        result = subprocess.run(
            ["bash", str(BUILD_SCRIPT), module_set], stdout=subprocess.PIPE, text=True,
            check=False)
        if result.returncode != 0:
            raise ToolsError(f"{BUILD_SCRIPT} failed with exit code {result.returncode}")
        directory = Path(result.stdout.strip().splitlines()[-1])
    missing = [name for name in BINARIES[module_set] if not (directory / name).is_file()]
    if missing:
        raise ToolsError(f"missing binaries in {directory}: {', '.join(missing)}")
    return directory


def versions(directory: Path) -> dict[str, str]:
    """The versions recorded by the build (``kubernetes``, ``helm``, ``kwok``, ...)."""
    stamp = directory / ".complete"
    if not stamp.is_file():
        return {}
    pairs = (line.split("=", 1) for line in stamp.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}
