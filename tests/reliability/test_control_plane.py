"""Control-plane faults on a PRIVATE local cluster: kube-apiserver restarted mid-reconcile,
then the whole cluster (etcd included) stopped and started. The operator process is never
restarted: its watches resume and changes made meanwhile converge."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from localcluster import LocalCluster
from shard_operator.keys import shard_name
from tests.operator.conftest import REPO, Kubectl, shardset
from tests.reliability.conftest import Operator, unexpected_errors
from tests.reliability.invariants import converge, record

pytestmark = [pytest.mark.reliability, pytest.mark.cluster, pytest.mark.timeout(900)]
NS = "faults"


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory):
    local = LocalCluster(Path(tmp_path_factory.mktemp("cp")) / "c")
    local.up()
    try:
        local.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        local.kubectl("wait", "--for=condition=Established", "crd/shardsets.shards.anoma.net",
                      "crd/shards.shards.anoma.net", "--timeout=60s")
        local.create_namespace(NS)
        yield local
    finally:
        local.down()
        assert local.stray_processes() == []


def _keys(n: int) -> list[list[str]]:
    return [[f"k{i}"] for i in range(n)]


def _apply(kc: Kubectl, n: int) -> None:
    result = kc.apply(shardset("cp", "cp", [{"key": k} for k in _keys(n)]))
    assert result.returncode == 0, result.stderr


def _wait_api(local: LocalCluster, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while local.kubectl("get", "--raw", "/readyz", check=False).returncode != 0:
        assert time.monotonic() < deadline, "API server not ready"
        time.sleep(0.5)


def test_operator_survives_apiserver_restart_and_full_cluster_stop(private: LocalCluster,
                                                                   tmp_path: Path) -> None:
    kc = Kubectl(private, NS)
    op = Operator(NS, tmp_path / "operator.log", kubeconfig=private.kubeconfig)
    op.start()
    figures: dict[str, float] = {}
    try:
        _apply(kc, 30)
        converge(kc, "cp", "cp", _keys(30), 120)

        # 1. kube-apiserver restarted right after a change (mid-reconcile).
        _apply(kc, 60)
        private.restart_apiserver()
        _wait_api(private)
        figures["apiserver_restart_mid_reconcile"] = converge(kc, "cp", "cp", _keys(60), 180)

        # 2. A change made after the restart must arrive through the resumed watches.
        private.restart_apiserver()
        _wait_api(private)
        victim = shard_name("cp", (b"k5",))
        start = time.monotonic()
        _apply(kc, 70)
        kc("delete", "pod", victim, "--wait=false")
        converge(kc, "cp", "cp", _keys(70), 180)
        figures["change_after_apiserver_restart"] = time.monotonic() - start

        # 3. The whole cluster (etcd included) stopped and started; changes made right
        # after it is back are seen by the same operator process.
        private.stop()
        time.sleep(5)
        assert op.alive(), "the operator died while the cluster was down"
        private.start()
        _wait_api(private)
        start = time.monotonic()
        _apply(kc, 80)
        kc("delete", "service", shard_name("cp", (b"k7",)), "--wait=false")
        kc("patch", "configmap", "shard-key-map-cp", "--type=merge",
           "-p", json.dumps({"data": {"cp-bogus": '["bogus"]'}}))
        converge(kc, "cp", "cp", _keys(80), 300)
        figures["change_after_full_cluster_restart"] = time.monotonic() - start
        assert op.alive(), "the operator had to be restarted"
    finally:
        op.kill()
    # Reconciles attempted while the API server was unreachable fail and are retried;
    # nothing else may have gone wrong.
    assert unexpected_errors(op.output()) == [], op.output()[-4000:]
    record("control_plane_faults", faults=3, operator_restarts=0,
           failed_reconciles_retried=op.output().count("ERROR   shard_operator.controller"),
           seconds={k: round(v, 1) for k, v in figures.items()}, data_lost=0)
