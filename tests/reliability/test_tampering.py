"""Tampering behind the operator's back, beyond tests/operator/test_lifecycle.py: deleted
Shards (schema ones come back; started ones stay deleted, as documented), Shard labels and
owner references, a wiped key map, and half the pods deleted at once. Every case
converges; the recovery time of each is reported."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from shard_operator import api
from shard_operator.keys import shard_name
from tests.operator.conftest import shardset, wait_ready
from tests.reliability.invariants import converge, record, violations

pytestmark = pytest.mark.timeout(600)
KEYS = [[f"t{i}"] for i in range(20)]


def _name(key: list[str]) -> str:
    return shard_name("tp", tuple(s.encode() for s in key))


def test_tampering_converges_and_recovery_is_timed(kubectl, operator) -> None:
    kubectl.apply(shardset("tp", "tp", [{"key": k, "initialValue": 1} for k in KEYS]))
    wait_ready(kubectl, "tp", len(KEYS))
    started_key = ["dyn"]
    asyncio.run(api.astart_shard("tp", started_key, 7, namespace=kubectl.namespace))
    keys = [*KEYS, started_key]
    assert converge(kubectl, "tp", "tp", keys, 60) >= 0
    times: dict[str, float] = {}

    def case(label: str, *commands: tuple[str, ...], expect: list[list[str]] | None = None
             ) -> None:
        for command in commands:
            kubectl(*command)
        times[label] = round(converge(kubectl, "tp", "tp", expect or keys, 60), 2)

    schema_shard, other = _name(KEYS[0]), _name(KEYS[1])
    uid = kubectl.json("shard", schema_shard)["metadata"]["uid"]
    case("delete a schema Shard (recreated)", ("delete", "shard", schema_shard, "--wait=true"))
    assert kubectl.json("shard", schema_shard)["metadata"]["uid"] != uid
    case("relabel a Shard", ("label", "shard", other, "shards.anoma.net/node-id=elsewhere",
                             "--overwrite"))
    case("strip a Shard's owner reference",
         ("patch", "shard", other, "--type=json",
          "-p", '[{"op":"remove","path":"/metadata/ownerReferences"}]'))
    case("wipe the key map's data",
         ("patch", "configmap", "shard-key-map-tp", "--type=json",
          "-p", json.dumps([{"op": "replace", "path": "/data", "value": {"x": "y"}}])))
    case("delete half the pods at once",
         ("delete", "pod", *[_name(k) for k in KEYS[::2]], "--wait=false"))
    case("delete every Service at once",
         ("delete", "service", "-l", "shards.anoma.net/node-id=tp", "--wait=false"))
    case("relabel a Pod to another shard",
         ("label", "pod", _name(KEYS[3]), f"shards.anoma.net/shard={_name(KEYS[4])}",
          "--overwrite"))
    # A started shard deleted by the user stays deleted (it is not in the schema) and
    # leaves the key map: the documented behaviour.
    case("delete a started Shard (stays deleted)",
         ("delete", "shard", _name(started_key), "--wait=true"), expect=KEYS)
    time.sleep(3)
    assert not kubectl.exists("shard", _name(started_key))
    assert violations(kubectl, "tp", "tp", KEYS) == []
    record("tampering_recovery_seconds", cases=len(times), seconds=times)
    assert all(t < 30 for t in times.values()), times
