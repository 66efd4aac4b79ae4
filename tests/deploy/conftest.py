"""Fixtures for the deploy tests: a private control plane (CRDs are cluster-scoped, and
Helm installs, CRD upgrades and HA Leases must not touch the shared cluster), Helm,
ServiceAccount kubeconfigs and operator processes with a chosen kubeconfig."""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from localcluster import LocalCluster
from localcluster.tools import ensure_tools, versions

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "shard-operator"
OPERATOR = [sys.executable, "-m", "shard_operator.cli.operator", "run"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.deploy)
            if "private" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.cluster)  # a private one: not for test-unit


@functools.cache
def helm_binary() -> Path:
    """Helm from the tool cache (built by cluster/build-tools.sh); never skipped."""
    helm = ensure_tools() / "helm"
    assert helm.is_file(), f"helm missing at {helm}"
    return helm


@functools.cache
def kube_version() -> str:
    """The Kubernetes version of the local control plane's binaries (e.g. v1.33.13)."""
    version = versions(helm_binary().parent).get("kubernetes", "")
    assert version, "the tools' build stamp names no Kubernetes version"
    return version


@functools.cache
def helm_home() -> Path:
    return Path(tempfile.mkdtemp(prefix="shard-operator-helm-"))


def helm(*args: str, kubeconfig: Path | None = None, check: bool = True
         ) -> subprocess.CompletedProcess[str]:
    home = helm_home()
    env = {**os.environ, "HELM_CACHE_HOME": str(home / "cache"),
           "HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data")}
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    if args and args[0] == "template" and not any(a.startswith("--kube-version") for a in args):
        # helm template assumes Kubernetes 1.20 without a cluster; the chart's kubeVersion
        # (>=1.29) refuses that. Render for the local control plane's version.
        args = (*args, f"--kube-version={kube_version()}")
    result = subprocess.run([str(helm_binary()), *args], capture_output=True, text=True,
                            env=env, timeout=180)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def kubectl_apply(cluster: LocalCluster, manifest: str, *extra: str
                  ) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("apply", *extra, "-f", "-", input=manifest, check=False)


def docs(manifest: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(manifest) if d]


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A private control plane for this module."""
    local = LocalCluster(Path(tmp_path_factory.mktemp("deploy")) / "c")
    local.up()
    yield local
    local.down()


def sa_kubeconfig(cluster: LocalCluster, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that holds nothing but a token of ``namespace/account``."""
    token = cluster.kubectl("create", "token", account, "-n", namespace,
                            "--duration=2h").stdout.strip()
    admin = json.loads(cluster.kubeconfig.read_text())
    config = {**admin, "users": [{"name": "local", "user": {"token": token}}]}
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Operator:
    """``shard-operator run`` as a local process with its own kubeconfig and metrics port."""

    def __init__(self, kubeconfig: Path, log: Path, *args: str) -> None:
        self.metrics_port, self.liveness_port = free_port(), free_port()
        self.log = log
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1"}
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [*OPERATOR, *args, f"--metrics-port={self.metrics_port}",
                 f"--liveness=http://127.0.0.1:{self.liveness_port}/healthz"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)

    def metric(self, name: str, **labels: str) -> float:
        """A sample's value from the process's /metrics (0 if absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v
                                               for k, v in labels.items()):
                    return sample.value
        return 0.0

    def healthz(self) -> int:
        """The HTTP status of kopf's liveness endpoint."""
        url = f"http://127.0.0.1:{self.liveness_port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
