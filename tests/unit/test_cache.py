"""The operator's cache: no going back to older versions, and the start-up sync gate."""

from __future__ import annotations

import asyncio
from typing import Any

from shard_operator.cache import Cache
from shard_operator.controller import Controller


def pod(name: str, version: str, uid: str = "u1", ready: bool = False) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid,
                         "resourceVersion": version},
            "status": {"phase": "Running" if ready else "Pending",
                       "conditions": [{"type": "Ready", "status": str(ready)}]}}


def test_an_older_event_does_not_roll_the_cache_back() -> None:
    cache = Cache()
    cache.put("Pod", "ns", pod("node-1-aaaaaaaaaaaaaaaa", "20", ready=True))
    cache.put("Pod", "ns", pod("node-1-aaaaaaaaaaaaaaaa", "12", ready=False))
    assert cache.get("Pod", "ns", "node-1-aaaaaaaaaaaaaaaa").ready is True
    cache.put("Pod", "ns", pod("node-1-aaaaaaaaaaaaaaaa", "21", ready=False))
    assert cache.get("Pod", "ns", "node-1-aaaaaaaaaaaaaaaa").ready is False


def test_a_recreated_object_replaces_the_old_one() -> None:
    cache = Cache()
    cache.put("Pod", "ns", pod("node-1-aaaaaaaaaaaaaaaa", "20", uid="old", ready=True))
    cache.remove("Pod", "ns", "node-1-aaaaaaaaaaaaaaaa", uid="old")
    assert cache.get("Pod", "ns", "node-1-aaaaaaaaaaaaaaaa") is None
    cache.put("Pod", "ns", pod("node-1-aaaaaaaaaaaaaaaa", "5", uid="new"))
    assert cache.get("Pod", "ns", "node-1-aaaaaaaaaaaaaaaa").uid == "new"


def test_sync_waits_for_every_listed_object() -> None:
    cache = Cache()
    assert not cache.synced  # nothing expected yet: not synced
    cache.expect({("Pod", "ns", "node-1-aaaaaaaaaaaaaaaa"),
                  ("Pod", "ns", "node-1-bbbbbbbbbbbbbbbb")})
    cache.put("Pod", "ns", pod("node-1-aaaaaaaaaaaaaaaa", "3"))
    assert not cache.synced
    cache.remove("Pod", "ns", "node-1-bbbbbbbbbbbbbbbb")  # a DELETED event counts too
    assert cache.synced
    empty = Cache()
    empty.expect(set())
    assert empty.synced  # nothing listed at start: the first pass may run at once


class VanishedObjects:
    """Stands in for the API server's answer to one question: does this object exist?"""

    def __init__(self, gone: set[tuple[str, str, str]]) -> None:
        self.gone, self.asked = gone, 0

    async def exists(self, kind: str, namespace: str, name: str) -> bool:
        self.asked += 1
        return (kind, namespace, name) not in self.gone


async def test_objects_deleted_before_the_watches_began_are_looked_up_and_forgotten() -> None:
    cache = Cache()
    delivered, deleted = ("Pod", "ns", "node-1-aaaaaaaaaaaaaaaa"), ("Pod", "ns",
                                                                    "node-1-bbbbbbbbbbbbbbbb")
    cache.expect({delivered, deleted})
    kube = VanishedObjects({deleted})
    controller = Controller(kube, cache)  # type: ignore[arg-type]
    waiting = asyncio.create_task(controller.wait_until_synced(check_after=0.5))
    await asyncio.sleep(0.1)
    cache.put("Pod", "ns", pod(delivered[2], "3"))
    await asyncio.wait_for(waiting, 10)
    assert cache.synced and kube.asked == 1
