"""HA failover under load: two operator replicas electing a leader on a Lease
(controller-runtime's timings: lease 15 s, renew deadline 10 s, retry 2 s); the leader
is SIGKILLed while a 100-key ShardSet converges and a client starts shards one after
the other. The standby takes over; nothing is lost or duplicated, and every
start_shard call that was under way completes."""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path

import pytest

from localcluster import LocalCluster
from shard_operator import api
from tests.conftest import wait_for
from tests.operator.conftest import Kubectl, shardset
from tests.reliability.conftest import Operator, unexpected_errors
from tests.reliability.invariants import converge, record

SEED = 20261125
LEASE_DURATION = 15  # seconds a standby waits after the last renewal it saw
ELECTION = ("--leader-election", "--log-format", "text")
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
    kubectl = Kubectl(cluster, namespace)
    active = Operator(namespace, tmp_path / "active.log", extra=ELECTION)
    standby = Operator(namespace, tmp_path / "standby.log", extra=ELECTION)
    active.start()
    wait_for(lambda: "leading: holding Lease" in active.output(), 60, what="the first leads")
    standby.start()
    wait_for(lambda: "standing by" in standby.output(), 60, what="the second stands by")
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
        wait_for(lambda: "leading: holding Lease" in standby.output(), LEASE_DURATION + 30,
                 interval=0.1, what="the standby leads")
        takeover = time.monotonic() - killed
        starter.join(timeout=300)
        assert not starter.is_alive(), "start_shard calls did not finish"
        recovery = converge(kubectl, "ha", "ha", BASE_KEYS + STARTED_KEYS, timeout=180)
        total = time.monotonic() - killed
    finally:
        active.kill()
        standby.kill(signal.SIGTERM)

    assert starter.errors == {}, starter.errors
    assert sorted(starter.results) == sorted(k[0] for k in STARTED_KEYS)
    assert unexpected_errors(standby.output()) == []
    record("ha_failover_under_load", base_keys=len(BASE_KEYS),
           started_keys=len(STARTED_KEYS), started_after_kill=in_flight,
           converged_after_kill_s=round(total, 1), converge_check_s=round(recovery, 1),
           start_shard_max_s=round(max(starter.latencies), 1),
           start_shard_median_s=round(sorted(starter.latencies)[len(starter.latencies) // 2],
                                      2),
           takeover_s=round(takeover, 1), lease_duration_s=LEASE_DURATION, data_lost=0)
