"""Regression tests of issue 14's controller defects, on an in-memory API server
(:mod:`tests.unit.fakekube`): an invalid generation, key-map write failures, a pass's
calls, a duplicate ShardSet's status, and a hand-made Shard."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import aiohttp
import pytest

from shard_operator import api, render
from shard_operator.constants import ORIGIN_STARTED
from shard_operator.keys import shard_name
from shard_operator.kube import ApiError
from tests.unit.fakekube import World

A, B = shard_name("node-1", (b"a",)), shard_name("node-1", (b"b",))


async def converged(world: World, schema: list[dict]) -> None:
    world.shardset("set", "node-1", schema)
    await world.reconcile()
    world.pods_ready()
    assert await world.reconcile() == []
    assert world.condition("ShardSet", "set", "Ready")["status"] == "True"


def start_shard(world: World, key: list[str]) -> None:
    """The Shard ``start_shard`` creates (its status is written at once, not deferred)."""
    world.add("Shard", render.shard(
        name=shard_name("node-1", tuple(s.encode() for s in key)), namespace="ns",
        node_id="node-1", segments=key, encoding="utf8", origin=ORIGIN_STARTED,
        owner=world.kube.stored("ShardSet", "set")))


def registered(world: World) -> set[str]:
    data = world.kube.stored("ConfigMap", "shard-key-map-node-1")["data"]
    return {k for k in data if k.startswith("node-1-")}


# ----- defect 2: an invalid generation applies nothing ------------------------------------

async def test_invalid_generation_applies_nothing_and_names_each_entry() -> None:
    world = World()
    await converged(world, [{"key": ["a"]}])
    body = world.kube.stored("ShardSet", "set")
    body["metadata"]["generation"] = 2
    body["spec"]["schema"] = [
        {"key": ["a"]}, {"key": ["b"]},
        {"key": ["YQ=="], "keyEncoding": "base64"},  # ["a"] again
        {"key": ["c"], "initialValue": "x" * 70_000}]  # over the limit
    world.add("ShardSet", body)
    await world.reconcile()
    assert world.names("Shard") == [A]  # b is not started: nothing of generation 2 applies
    assert registered(world) == {A}  # the running shard keeps running, registered
    assert world.status("Shard", A)["registered"] is True
    ready = world.condition("ShardSet", "set", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSchema")
    assert "spec.schema[2]" in ready["message"] and "spec.schema[3]" in ready["message"]
    assert "spec.schema[1]" not in ready["message"]
    assert world.status("ShardSet", "set")["observedGeneration"] == 2
    assert [(e["type"], e["reason"]) for e in world.kube.events
            if e["reason"] == "InvalidSchema"] == [("Warning", "InvalidSchema")]
    # Fixing the spec converges.
    body = world.kube.stored("ShardSet", "set")
    body["metadata"]["generation"] = 3
    body["spec"]["schema"] = [{"key": ["a"]}, {"key": ["b"]}]
    world.add("ShardSet", body)
    await world.reconcile()
    world.pods_ready()
    await world.reconcile()
    assert world.names("Shard") == [A, B] and registered(world) == {A, B}
    assert world.condition("ShardSet", "set", "Ready")["status"] == "True"


async def test_invalid_generation_deletes_nothing_under_the_delete_policy() -> None:
    world = World()
    await converged(world, [{"key": ["a"]}, {"key": ["b"]}])
    body = world.kube.stored("ShardSet", "set")
    body["metadata"]["generation"] = 2
    body["spec"]["removedKeyPolicy"] = "Delete"
    body["spec"]["schema"] = [{"key": ["a"]}, {"key": ["YQ=="], "keyEncoding": "base64"}]
    world.add("ShardSet", body)
    await world.reconcile()
    assert world.names("Shard") == [A, B]  # b's removal is part of the invalid generation


# ----- defect 3: transient key-map write failures are retried -----------------------------

@pytest.mark.parametrize("error", [
    ApiError(409, "Conflict", "the object has been modified"),
    ApiError(503, "ServiceUnavailable", "etcd leader changed"),
    aiohttp.ServerDisconnectedError(),
    TimeoutError(),
], ids=["409", "503", "disconnected", "timeout"])
async def test_transient_key_map_failure_is_retried_not_reported(error) -> None:
    world = World()
    await converged(world, [{"key": ["a"]}])
    start_shard(world, ["b"])
    world.kube.failures["replace"].append(error)
    retry = await world.reconcile()
    assert retry and "not written yet" in retry[0]  # re-queued with backoff
    # The shard already listed stays registered; the new one is pending, not failed.
    assert world.status("Shard", A)["registered"] is True
    assert world.condition("Shard", A, "Registered")["reason"] == "Registered"
    assert world.condition("Shard", B, "Registered")["reason"] == "KeyMapPending"
    assert world.condition("ShardSet", "set", "Degraded")["status"] == "False"
    world.pods_ready()
    assert await world.reconcile() == []
    assert registered(world) == {A, B} and world.status("Shard", B)["registered"] is True


async def test_terminal_key_map_failure_concerns_only_the_shards_being_added() -> None:
    world = World()
    await converged(world, [{"key": ["a"]}])
    start_shard(world, ["b"])
    world.kube.failures["replace"].append(ApiError(422, "Invalid", "too long"))
    assert await world.reconcile()
    assert world.condition("Shard", A, "Registered")["reason"] == "Registered"
    assert world.condition("Shard", B, "Registered")["reason"] == "KeyMapUpdateFailed"


@pytest.mark.parametrize(("event", "outcome"), [
    ({"type": "MODIFIED", "object": {"status": {"registered": True}}}, "registered"),
    ({"type": "DELETED", "object": {}}, "failed"),
    ({"type": "MODIFIED", "object": {"status": {"conditions": [
        {"type": "Registered", "reason": "KeyMapFull", "message": "m"}]}}}, "failed"),
    ({"type": "MODIFIED", "object": {"status": {"conditions": [
        {"type": "Registered", "reason": "KeyMapUpdateFailed", "message": "m"}]}}}, "failed"),
    ({"type": "MODIFIED", "object": {"status": {"conditions": [
        {"type": "Registered", "reason": "KeyMapPending", "message": "m"}]}}}, "pending"),
    ({"type": "MODIFIED", "object": {"status": {"conditions": [
        {"type": "Registered", "reason": "WorkloadMissing", "message": "m"}]}}}, None),
    ({"type": "ADDED", "object": {}}, None),
])
def test_start_shard_reads_the_registration_outcome(event, outcome) -> None:
    result = api.registration_outcome(event)
    assert (result[0] if result else None) == outcome


# ----- defect 4: a pass ends only when every call it started has ended --------------------

async def test_a_pass_ends_only_when_every_call_has_ended() -> None:
    world = World()
    ended = asyncio.Event()

    async def fails() -> None:
        await asyncio.sleep(0.01)
        raise aiohttp.ClientConnectionError("reset")  # not an ApiError

    async def slow() -> None:
        try:
            await asyncio.sleep(5)
        finally:
            ended.set()

    with pytest.raises(aiohttp.ClientConnectionError):
        await world.controller.writes.bounded([slow, fails])
    assert ended.is_set()  # cancelled and awaited, not left running after the pass


# ----- defect 5: a refused duplicate's status write is retried and reported ---------------

async def test_duplicate_shardset_status_write_is_retried() -> None:
    world = World()
    world.shardset("first", "node-1", [{"key": ["a"]}], created="2026-01-01T00:00:00Z")
    world.shardset("second", "node-1", [{"key": ["b"]}], created="2026-01-02T00:00:00Z")
    world.kube.failures["patch_status"].append(ApiError(500, "InternalError", "etcd"))
    retry = await world.reconcile()
    assert any("ShardSet second" in reason for reason in retry)
    assert "conditions" not in world.status("ShardSet", "second")
    await world.reconcile()
    ready = world.condition("ShardSet", "second", "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NodeIdConflict")
    assert world.names("Shard") == [A]


# ----- defect 6: a hand-made Shard under another name is refused --------------------------

async def test_hand_made_shard_with_a_non_derived_name_is_refused() -> None:
    world = World()
    world.add("Shard", {"apiVersion": "shards.anoma.net/v1alpha1", "kind": "Shard",
                        "metadata": {"name": "by-hand"},
                        "spec": {"nodeId": "node-1", "key": ["h"], "keyEncoding": "utf8"}})
    await converged(world, [{"key": ["a"]}])
    assert "by-hand" not in world.names("Pod") + world.names("Service")
    assert registered(world) == {A}
    cond = world.condition("Shard", "by-hand", "Registered")
    assert (cond["status"], cond["reason"]) == ("False", "NameNotDerived")
    assert shard_name("node-1", (b"h",)) in cond["message"]
    assert world.status("ShardSet", "set")["desiredShards"] == 1
    events = [e for e in world.kube.events if e["name"] == "by-hand"]
    assert [(e["type"], e["reason"]) for e in events] == [("Warning", "NameNotDerived")]
    writes = len(world.kube.writes)
    assert await world.reconcile() == [] and len(world.kube.writes) == writes  # settled


# ----- defect 8: start_shard asks the API server for one node id's ShardSet ---------------

async def test_start_shard_selects_the_shardset_by_node_id() -> None:
    world = World()
    world.shardset("set", "node-1", [{"key": ["a"]}])
    found = await api._find_shardset(world.kube, "ns", "node-1")  # type: ignore[arg-type]
    assert found["metadata"]["name"] == "set"
    assert world.kube.list_calls == [{"kind": "ShardSet",
                                      "field_selector": "spec.nodeId=node-1"}]


# ----- the Degraded anti-flap: a recent failure is re-derived with no event -----------------

async def test_a_recent_failure_requeues_the_node_when_degraded_may_clear() -> None:
    world = World()
    await converged(world, [{"key": ["a"]}])
    finished = datetime.fromtimestamp(time.time() - 10, UTC).isoformat()
    pod = world.kube.stored("Pod", A)
    pod["status"]["containerStatuses"] = [{
        "restartCount": 3, "state": {"running": {}},
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": finished}}}]
    world.cache.put("Pod", "ns", world.kube._store("Pod", pod))
    later: list[tuple[tuple[str, str], float]] = []
    world.controller.queue.add_after = lambda key, delay: later.append((key, delay))  # type: ignore[method-assign]
    await world.reconcile()
    assert world.condition("ShardSet", "set", "Degraded")["reason"] == "CrashLoopBackOff"
    [(key, delay)] = later
    assert key == ("ns", "node-1") and 45 < delay < 55  # 60 s after the failure, + 0.5
