"""HA failover under load: two operator replicas in one kopf peering; the active one is
SIGKILLed while a 100-key ShardSet converges and a client starts shards one after the
other. The standby takes over; nothing is lost or duplicated, and every start_shard
call that was under way completes."""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path

import pytest

from localcluster import LocalCluster
from shard_operator import api
from tests.conftest import REPO_ROOT, wait_for
from tests.operator.conftest import Kubectl, shardset
from tests.reliability.conftest import Operator, unexpected_errors
from tests.reliability.invariants import converge, record

SEED = 20261125
LIFETIME = 10  # seconds a silent peer is still counted alive
BASE_KEYS = [[f"s{i}"] for i in range(100)]
STARTED_KEYS = [[f"d{i}"] for i in range(30)]


class Starter(threading.Thread):
    """Calls start_shard for each key in turn, recording each outcome and its latency."""

    def __init__(self, namespace: str) -> None:
        super().__init__(daemon=True)
        self.namespace = namespace
        self.results: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.latencies: list[float] = []

    def run(self) -> None:
        for key in STARTED_KEYS:
            began = time.monotonic()
            try:
                self.results[key[0]] = api.start_shard("ha", key, 1, namespace=self.namespace,
                                                       timeout=120)
            except Exception as error:  # recorded and asserted on below
                self.errors[key[0]] = f"{type(error).__name__}: {error}"
            self.latencies.append(time.monotonic() - began)


@pytest.mark.reliability
@pytest.mark.timeout(420)
def test_failover_under_load_loses_and_duplicates_nothing(cluster: LocalCluster, crds: None,
                                                          namespace: str,
                                                          tmp_path: Path) -> None:
    peering_crds = sorted((REPO_ROOT / "manifests" / "peering").glob("kopf.dev_*"))
    assert peering_crds, "kopf's peering CRDs are missing from manifests/peering"
    cluster.kubectl("apply", "--server-side", *(f"-f{p}" for p in peering_crds))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    "crd/kopfpeerings.kopf.dev")
    kubectl = Kubectl(cluster, namespace)
    common = ("--peering", "ha", "--peering-lifetime", str(LIFETIME))
    active = Operator(namespace, tmp_path / "active.log", extra=(*common, "--priority", "200"))
    standby = Operator(namespace, tmp_path / "standby.log",
                       extra=(*common, "--priority", "100"))
    active.start()
    wait_for(lambda: "Resuming operations" in active.output(), 60, what="the active resumes")
    standby.start()
    starter = Starter(namespace)
    try:
        assert kubectl.apply(shardset("ha", "ha", [{"key": k} for k in BASE_KEYS])
                             ).returncode == 0
        starter.start()
        # Kill the active replica at a seeded moment while both loads are under way.
        wait_for(lambda: len(starter.latencies) >= 3, 120, what="three shards started")
        time.sleep(random.Random(SEED).uniform(0.0, 2.0))
        active.kill(signal.SIGKILL)
        killed = time.monotonic()
        in_flight = len(STARTED_KEYS) - len(starter.latencies)
        starter.join(timeout=300)
        assert not starter.is_alive(), "start_shard calls did not finish"
        recovery = converge(kubectl, "ha", "ha", BASE_KEYS + STARTED_KEYS, timeout=180)
        total = time.monotonic() - killed
    finally:
        active.kill()
        standby.kill(signal.SIGTERM)

    assert starter.errors == {}, starter.errors
    assert sorted(starter.results) == sorted(k[0] for k in STARTED_KEYS)
    assert "Resuming operations" in standby.output(), "the standby never took over"
    assert unexpected_errors(standby.output()) == []
    record("ha_failover_under_load", base_keys=len(BASE_KEYS),
           started_keys=len(STARTED_KEYS), started_after_kill=in_flight,
           converged_after_kill_s=round(total, 1), converge_check_s=round(recovery, 1),
           start_shard_max_s=round(max(starter.latencies), 1),
           start_shard_median_s=round(sorted(starter.latencies)[len(starter.latencies) // 2],
                                      2),
           peering_lifetime_s=LIFETIME, data_lost=0)
