"""Fixtures for operator tests: the CRDs installed, and an operator process per test
watching that test's namespace."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster import LocalCluster
from tests.conftest import wait_for

REPO = Path(__file__).resolve().parents[2]
OPERATOR = [sys.executable, "-m", "shard_operator.cli.operator", "run"]
# One operator per test namespace, often restarted: no Lease to wait for (the HA tests
# turn election on with --leader-election, which comes later and wins).
STANDALONE = ("--no-leader-election",)


class Kubectl:
    def __init__(self, cluster: LocalCluster, namespace: str) -> None:
        self.cluster, self.namespace = cluster, namespace

    def __call__(self, *args: str, input: str | None = None, check: bool = True
                 ) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl("-n", self.namespace, *args, input=input, check=check)

    def json(self, *args: str) -> Any:
        return json.loads(self("get", *args, "-o", "json").stdout)

    def items(self, kind: str, *selectors: str) -> list[dict[str, Any]]:
        return self.json(kind, *selectors)["items"]

    def apply(self, obj: dict[str, Any], server_side: bool = True
              ) -> subprocess.CompletedProcess[str]:
        args = ["apply", "--server-side", "--field-manager=test"] if server_side else ["apply"]
        return self(*args, "-f", "-", input=json.dumps(obj), check=False)

    def exists(self, kind: str, name: str) -> bool:
        return self("get", kind, name, check=False).returncode == 0


@pytest.fixture(scope="session")
def crds(cluster: LocalCluster) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/shardsets.shards.anoma.net",
                    "crd/shards.shards.anoma.net", "--timeout=60s")


class OperatorProcess:
    def __init__(self, namespace: str, log: Path) -> None:
        self.namespace, self.log = namespace, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([*OPERATOR, "-n", self.namespace, *STANDALONE,
                                             *extra],
                                            stdout=log, stderr=subprocess.STDOUT, env=env,
                                            cwd=REPO)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def kubectl(cluster: LocalCluster, namespace: str) -> Kubectl:
    return Kubectl(cluster, namespace)


@pytest.fixture
def operator(crds: None, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(namespace, tmp_path / "operator.log")
    proc.start()
    yield proc
    proc.kill(signal.SIGTERM)
    assert "Traceback" not in proc.output(), proc.output()[-4000:]


def shardset(name: str, node_id: str, schema: list[dict[str, Any]], **spec: Any
             ) -> dict[str, Any]:
    return {"apiVersion": "shards.anoma.net/v1alpha1", "kind": "ShardSet",
            "metadata": {"name": name},
            "spec": {"nodeId": node_id, "schema": schema, **spec}}


CONFORMANCE_SCHEMA = [{"key": ["a"], "initialValue": 5}, {"key": ["b"]},
                      {"key": ["c"], "initialValue": 15}]


def ready_condition(obj: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions", [])
                 if c["type"] == "Ready"), None)


def wait_ready(kubectl: Kubectl, name: str, desired: int, timeout: float = 90.0
               ) -> dict[str, Any]:
    def check():
        obj = kubectl.json("shardset", name)
        status, cond = obj.get("status") or {}, ready_condition(obj)
        if (cond and cond["status"] == "True" and status.get("desiredShards") == desired
                and status.get("observedGeneration") == obj["metadata"]["generation"]):
            return obj
        return None
    return wait_for(check, timeout, what=f"ShardSet {name} Ready with {desired} shards")
