"""A rollout's budget on an in-memory API server: a pod the operator deleted counts as
going from the moment its delete succeeds, not only once its watch event arrives."""

from __future__ import annotations

import asyncio
import copy

from tests.unit.fakekube import NS, World


class Watched(World):
    """A World whose deletions reach the cache a moment later, as a watch event would."""

    def __init__(self, delay: float | None = 0.01) -> None:
        super().__init__()
        delete = self.kube.delete

        async def deleting(kind: str, namespace: str, name: str, uid: str | None = None
                           ) -> None:
            self.deleted.append(name)
            await delete(kind, namespace, name, uid)
            if delay is not None:
                asyncio.get_running_loop().call_later(
                    delay, self.cache.remove, kind, namespace, name, uid)

        self.deleted: list[str] = []
        self.kube.delete = deleting  # type: ignore[method-assign]


async def converged(world: World, n: int, max_unavailable: int | str = 1) -> None:
    world.add("ShardSet", {
        "apiVersion": "shards.anoma.net/v1alpha1", "kind": "ShardSet",
        "metadata": {"name": "set", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"nodeId": "node-1", "schema": [{"key": [f"k{i}"]} for i in range(n)],
                 "updateStrategy": {"type": "RollingUpdate",
                                    "rollingUpdate": {"maxUnavailable": max_unavailable}}}})
    await world.reconcile()
    world.pods_ready()
    assert await world.reconcile() == []


def change_template(world: World) -> None:
    body = copy.deepcopy(world.kube.stored("ShardSet", "set"))
    body["spec"]["template"] = {"spec": {"containers": [{"name": "shard", "image": "new:2"}]}}
    body["metadata"]["generation"] = 2
    world.cache.put("ShardSet", NS, world.kube._store("ShardSet", body))


async def test_pods_being_deleted_count_against_the_budget_before_their_events() -> None:
    world = Watched(delay=None)  # no deletion's watch event has arrived yet
    await converged(world, 6, max_unavailable=2)
    change_template(world)
    await world.reconcile()
    assert len(world.deleted) == 2
    for _ in range(3):  # passes that come before any deletion's watch event
        await world.reconcile()
    # The two are known to be going: neither deleted again (the cache used to show them
    # Ready until their events came, so each pass sent their deletes once more), nor a
    # third one taken down in their place.
    assert len(world.deleted) == 2 and len(set(world.deleted)) == 2
