"""Conflicts: two clients start the same key at once; exactly one wins, the other is told
"already started" naming the winner's shard, and the winner's initial value stands."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shard_operator import api
from shard_operator.errors import AlreadyStarted
from tests.operator.conftest import CONFORMANCE_SCHEMA, shardset, wait_ready
from tests.reliability.invariants import record

pytestmark = pytest.mark.timeout(300)
SHARDCTL = Path(sys.executable).parent / "shardctl"


async def test_concurrent_start_shard_exactly_one_wins(kubectl, operator) -> None:
    kubectl.apply(shardset("c", "c", CONFORMANCE_SCHEMA))
    wait_ready(kubectl, "c", 3)
    rounds = 8
    for round_ in range(rounds):
        key = [f"race-{round_}"]
        results = await asyncio.gather(
            *(api.astart_shard("c", key, value, namespace=kubectl.namespace, timeout=60)
              for value in (100 + round_, 200 + round_)), return_exceptions=True)
        wins = [r for r in results if isinstance(r, str)]
        lost = [r for r in results if isinstance(r, AlreadyStarted)]
        assert (len(wins), len(lost)) == (1, 1), results
        assert lost[0].service == wins[0]
        shard = kubectl.json("shard", lost[0].shard)
        winner_value = (100 + round_, 200 + round_)[results.index(wins[0])]
        assert shard["spec"]["initialValue"] == winner_value
    wait_ready(kubectl, "c", 3 + rounds)
    record("concurrent_start_shard_in_process", rounds=rounds, winners_per_round=1)


def test_concurrent_shardctl_processes_exactly_one_wins(kubectl, operator) -> None:
    kubectl.apply(shardset("p", "p", CONFORMANCE_SCHEMA))
    wait_ready(kubectl, "p", 3)
    rounds = 3
    env = {**os.environ, "SHARD_NAMESPACE": kubectl.namespace}
    for round_ in range(rounds):
        procs = [subprocess.Popen([str(SHARDCTL), "start-shard", "p", f"dup-{round_}",
                                   "--value", str(n)], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for n in range(4)]
        outcomes = [(p.wait(timeout=120), *p.communicate()) for p in procs]
        codes = sorted(code for code, _, _ in outcomes)
        assert codes == [0, 3, 3, 3], outcomes
        (address,) = {out.strip() for code, out, _ in outcomes if code == 0}
        for code, _, err in outcomes:
            if code == 3:
                assert "already started: shard p-" in err and address in err, err
    record("concurrent_shardctl_processes", rounds=rounds, clients=4, winners_per_round=1)
