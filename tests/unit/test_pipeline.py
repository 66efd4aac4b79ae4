"""Issue #17: a pass pipelines each new Shard on to its Service and Pod, and lists the
shards it has made in key map slices while it goes on; the ShardSet's status is written
beside the Shards'. On the in-memory API server (:mod:`tests.unit.fakekube`)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shard_operator.steps.keymap import Slices
from shard_operator.writes import Writes
from tests.unit.fakekube import World

KEYS = [{"key": [k]} for k in ("a", "b", "c", "d")]


def one_at_a_time(world: World, pod_seconds: float = 0.0) -> None:
    """One call at a time (so the order of writes is the pipeline's), each Pod create
    taking ``pod_seconds``."""
    world.controller.writes = Writes(world.kube, world.cache, concurrency=1)  # type: ignore[arg-type]
    create = world.kube.create

    async def slow_create(body: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        if body["kind"] == "Pod" and pod_seconds:
            await asyncio.sleep(pod_seconds)
        return await create(body, dry_run=dry_run)

    world.kube.create = slow_create  # type: ignore[method-assign]


async def test_each_shard_goes_on_to_its_workloads_at_once() -> None:
    world = World()
    one_at_a_time(world)
    world.shardset("set", "node-1", KEYS)
    await world.reconcile()
    kinds = [kind for verb, kind, _ in world.kube.writes if verb == "create"
             and kind in ("Shard", "Service", "Pod")]
    assert kinds[:6] == ["Shard", "Service", "Pod", "Shard", "Service", "Pod"]
    assert kinds.count("Pod") == 4


async def first_pass(monkeypatch: pytest.MonkeyPatch, setting: str, value: float, *,
                     pod_seconds: float) -> tuple[World, list, int]:
    """One pass over a new ShardSet of KEYS with ``Slices.<setting>`` set and workloads
    made one at a time: the world, its writes and the index of the first key map write."""
    monkeypatch.setattr(Slices, setting, value)
    world = World()
    one_at_a_time(world, pod_seconds=pod_seconds)
    world.shardset("set", "node-1", KEYS)
    await world.reconcile()
    writes = world.kube.writes
    return world, writes, next(i for i, w in enumerate(writes) if w[1] == "ConfigMap")


async def test_slices_list_the_shards_made_while_the_pass_goes_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    world, writes, first_map = await first_pass(monkeypatch, "entries", 2, pod_seconds=0.02)
    last_shard = max(i for i, w in enumerate(writes) if w[1] == "Shard")
    assert first_map < last_shard  # two shards were listed before the last was made
    data = world.kube.stored("ConfigMap", "shard-key-map-node-1")["data"]
    assert len(data) == 4 + 4  # the header and every key, in the end
    map_writes = [w for w in writes if w[1] == "ConfigMap"]
    assert len(map_writes) <= 3  # two slices of two; the pass's own write had nothing left
    # Converged and idle: no slice and no write at all.
    world.pods_ready()
    assert await world.reconcile() == []
    before = len(world.kube.writes)
    assert await world.reconcile() == []
    assert len(world.kube.writes) == before


async def test_a_slow_trickle_is_listed_a_second_after_it_became_due(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _, writes, first_map = await first_pass(monkeypatch, "seconds", 0.05, pod_seconds=0.04)
    last_pod = max(i for i, w in enumerate(writes) if w[1] == "Pod")
    assert first_map < last_pod


async def test_a_failed_slice_is_left_to_the_passs_own_write(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from shard_operator.kube import ApiError

    monkeypatch.setattr(Slices, "entries", 1)
    world = World()
    one_at_a_time(world, pod_seconds=0.01)
    failing = [True]
    replace = world.kube.replace

    async def flaky_replace(body: dict[str, Any]) -> dict[str, Any]:
        if failing[0]:
            raise ApiError(500, "InternalError", "etcd is slow")
        return await replace(body)

    world.kube.replace = flaky_replace  # type: ignore[method-assign]
    world.shardset("set", "node-1", KEYS)
    reasons = await world.reconcile()
    data = world.kube.stored("ConfigMap", "shard-key-map-node-1")["data"]
    assert len(data) == 4 + 1  # the first slice created the map; the others failed
    assert any("key map" in r for r in reasons)  # the pass's own write: retried
    failing[0] = False
    await world.reconcile()
    assert len(world.kube.stored("ConfigMap", "shard-key-map-node-1")["data"]) == 4 + 4


async def test_the_shardset_status_is_not_written_after_every_shards() -> None:
    world = World()
    one_at_a_time(world)
    world.shardset("set", "node-1", KEYS)
    await world.reconcile()
    world.pods_ready()
    start = len(world.kube.writes)
    assert await world.reconcile() == []
    statuses = [kind for verb, kind, _ in world.kube.writes[start:] if verb == "patch-status"]
    assert statuses.count("Shard") == 4
    assert statuses.index("ShardSet") < len(statuses) - 1
    assert world.condition("ShardSet", "set", "Ready")["status"] == "True"
