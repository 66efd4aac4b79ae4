"""Operator crash consistency: while a 300-key ShardSet converges, SIGKILL the operator at a
random (seeded) moment, restart it, and check every invariant after each round."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from tests.operator.conftest import shardset
from tests.reliability.conftest import Operator
from tests.reliability.invariants import converge, record, summary, violations

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900)]
SEED = 20261124
ROUNDS = 20
BASE_KEYS = 300


def _keys(extra_round: int | None) -> list[list[str]]:
    keys = [[f"k{i:03d}"] for i in range(BASE_KEYS)]
    if extra_round is not None:  # ten keys that exist only in this round
        keys += [[f"r{extra_round:02d}", str(i)] for i in range(10)]
    return keys


def test_sigkill_at_random_moments_converges_every_round(kubectl, crds, namespace,
                                                         tmp_path: Path) -> None:
    rng = random.Random(SEED)
    op = Operator(namespace, Path(os.environ.get("RELIABILITY_LOG_DIR", tmp_path)) / "crash.log")
    schema = [{"key": k, "initialValue": i} for i, k in enumerate(_keys(None))]
    body = shardset("big", "big", schema, removedKeyPolicy="Delete")
    assert kubectl.apply(body).returncode == 0
    recoveries, kill_delays, killed_mid_work = [], [], 0
    try:
        for round_ in range(ROUNDS):
            # The change this round must converge: create all (round 0), then alternately
            # add ten keys, or remove them again and delete some pods and services.
            keys = _keys(round_ if round_ % 2 else None)
            if round_:
                body["spec"]["schema"] = [{"key": k} for k in keys]
                assert kubectl.apply(body).returncode == 0
                victims = rng.sample(range(BASE_KEYS), 12)
                pods = [f"pod/{n}" for n in _names(kubectl, victims[:8])]
                services = [f"service/{n}" for n in _names(kubectl, victims[8:])]
                kubectl("delete", *pods, *services, "--wait=false", check=False)
            op.start()
            # Kill windows sized to the operator's speed: a round converges in 1-3 s
            # (start-up included), the first, creating all 300 shards, in about 7-9 s.
            delay = rng.uniform(0.3, 2.0 if round_ else 4.0)
            time.sleep(delay)
            kill_delays.append(delay)
            if violations(kubectl, "big", "big", keys):
                killed_mid_work += 1
            op.kill()
            assert "Traceback" not in op.output(), op.output()[-3000:]
            op.start()
            recoveries.append(converge(kubectl, "big", "big", keys, timeout=240))
            op.kill()
            if round_ == 0:
                first_uids = {s["spec"]["key"][0]: s["metadata"]["uid"]
                              for s in kubectl.items("shards")}
    finally:
        op.kill()
    assert "Traceback" not in op.output(), op.output()[-3000:]
    # Nothing lost: no base shard was ever deleted and recreated. Later schemas carry no
    # initial values, so a recreated shard would have lost its value and changed its uid.
    shards = {s["spec"]["key"][0]: s for s in kubectl.items("shards")}
    for i in range(BASE_KEYS):
        shard = shards[f"k{i:03d}"]
        assert shard["spec"].get("initialValue") == i, shard["spec"]
        assert shard["metadata"]["uid"] == first_uids[f"k{i:03d}"]
    record("operator_crash_consistency", rounds=ROUNDS, keys=BASE_KEYS, seed=SEED,
           killed_mid_work=killed_mid_work, recovery=summary(recoveries),
           first_round_s=round(recoveries[0], 1), data_lost=0)
    assert killed_mid_work >= ROUNDS // 2, "too few kills landed while work was pending"


def _names(kubectl, indexes: list[int]) -> list[str]:
    from shard_operator.keys import shard_name

    return [shard_name("big", (f"k{i:03d}".encode(),)) for i in indexes]
