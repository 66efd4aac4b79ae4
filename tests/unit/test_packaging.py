"""What the product's wheel holds, read from pyproject.toml: the operator's package and
its commands only (localcluster is dev-only, its own distribution under cluster/), with
the ``py.typed`` marker it promises."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_the_operator_only_and_is_typed() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    found = project["tool"]["setuptools"]["packages"]["find"]
    assert found["where"] == ["operator"] and found["include"] == ["shard_operator*"]
    assert set(project["project"]["scripts"]) == {
        "shard-operator", "shardctl", "kubectl-shard", "shard-server"}
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["shard_operator"]
    assert (REPO / "operator" / "shard_operator" / "py.typed").is_file()
    dev = tomllib.loads((REPO / "cluster" / "pyproject.toml").read_text())
    assert dev["project"]["scripts"] == {"localcluster": "localcluster.cli:main"}
    assert any(d.startswith("mypy==") for d in project["project"]["optional-dependencies"]["dev"])


def test_the_images_build_without_localcluster() -> None:
    for dockerfile in ("operator/Dockerfile", "shard-server/Dockerfile",
                       "shard-server/Dockerfile.dockerignore"):
        assert "localcluster" not in (REPO / "images" / dockerfile).read_text()


def test_the_shard_server_imports_nothing_of_kopf_or_the_kubernetes_client() -> None:
    """The shard server's image needs neither: the key codec and the MISSING sentinel it
    shares with the operator are standard library only."""
    import subprocess
    import sys

    probe = ("import sys, shard_operator.server.main, shard_operator.server.app; "
             "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
             "('kopf', 'kubernetes_asyncio', 'kubernetes')); "
             "print(bad)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_the_operator_imports_no_kubernetes_client_library() -> None:
    """kopf imports the generated models of ``kubernetes`` or ``kubernetes_asyncio``
    whenever either is installed (about 37 MB of peak RSS, see bench/clientmem.py); the
    operator needs neither: kube.py speaks raw JSON over aiohttp, kubeconfig.py loads the
    settings. Nor does the project depend on one."""
    import subprocess
    import sys

    probe = ("import sys, shard_operator.cli.operator, shard_operator.handlers, "
             "shard_operator.leader, shard_operator.cli.shardctl, kopf; "
             "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
             "('kubernetes_asyncio', 'kubernetes', 'lightkube', 'pykube')); "
             "print(bad)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    names = [d.split("=")[0].split("[")[0].strip().lower()
             for d in project["project"]["dependencies"]]
    assert not {"kubernetes", "kubernetes-asyncio", "lightkube", "pykube-ng"} & set(names)
