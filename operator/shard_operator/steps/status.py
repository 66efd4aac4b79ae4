"""Step 4: statuses. Each Shard's and the owner's status is written only when it
differs from what was observed, with one event per change a user must know of; a
refused duplicate ShardSet and hand-made Shards are told why in theirs."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import Any

from .. import conditions, desired, metrics
from ..cache import ShardSetView, ShardView
from ..constants import ORIGIN_SCHEMA
from ..decisions import (
    Pass,
    duplicate_status,
    refused_status,
    shard_status,
    shard_status_inputs,
    shardset_status,
    status_differs,
    status_event,
)
from ..failing import recheck_after
from ..reasons import NAME_NOT_DERIVED, NO_SHARD_SET, NODE_ID_CONFLICT
from ..writes import Writes


async def write_shards(writes: Writes, namespace: str, shards: list[ShardView], run: Pass
                       ) -> None:
    """Patch the status of each Shard whose status differs from what was observed.

    A schema Shard whose Pod this pass has just created is left for the pass its
    Pod's watch events bring: its status would say "Pending" only to be rewritten a
    moment later (at 1,000 shards that is 1,000 writes saved while converging). A
    started Shard's status is written at once: ``start_shard`` waits for it to say
    ``registered``, and waiting for the Pod's events doubled its latency.

    The statuses are made as write slots free up (a generator), not all at once: at
    5,000 shards a list of every patch held thousands of status bodies at the same
    time, while the watch events of the first writes were already arriving."""

    def calls() -> Iterator[Callable[[], Awaitable[Any]]]:
        for shard in shards:
            outcome = run.outcomes.get(shard.name)
            if (outcome is not None and outcome.pod_event_due
                    and shard.origin == ORIGIN_SCHEMA):
                continue
            inputs = shard_status_inputs(shard, run)
            if desired.of(writes.cache).status_unchanged(namespace, shard, inputs):
                continue
            status = shard_status(shard, run, namespace)
            if status_differs(shard.status, status):
                status["conditions"] = conditions.merge(shard.status.get("conditions"),
                                                        status["conditions"])
                yield partial(writes.patch_status, "Shard", namespace, shard.name, status,
                              run.errors)
            else:
                desired.of(writes.cache).status_current(namespace, shard, inputs)

    await writes.bounded(calls())


async def write_owner(writes: Writes, namespace: str, owner: ShardSetView,
                      shards: list[ShardView], run: Pass) -> None:
    now = time.time()
    status = shardset_status(owner, shards, run, now)
    # Degraded may clear after a while with no event to say so: the controller
    # re-queues the node id then (see failing.recheck_after).
    run.recheck = recheck_after([o.pod for o in run.outcomes.values() if o.pod is not None],
                                now)
    metrics.SHARDS.labels(namespace, owner.name, "desired").set(status["desiredShards"])
    metrics.SHARDS.labels(namespace, owner.name, "registered").set(
        status["registeredShards"])
    metrics.SHARDS.labels(namespace, owner.name, "ready").set(status["readyShards"])
    metrics.record_status(namespace, owner.name, status)
    if not status_differs(owner.status, status):
        return
    previous = owner.status.get("conditions")
    status["conditions"] = conditions.merge(previous, status["conditions"])
    await writes.patch_status("ShardSet", namespace, owner.name, status, run.errors)
    event = status_event(previous, status["conditions"])
    if event is not None:
        await writes.event(owner, "ShardSet", *event)


async def refuse_duplicate(writes: Writes, other: ShardSetView, owner: ShardSetView,
                           run: Pass) -> None:
    """A second ShardSet for a taken node id: refused in its status, nothing touched.
    A failed status write is retried (``run.retry``) and logged by the worker."""
    status, message = duplicate_status(other, owner)
    if not status_differs(other.status, status):
        return
    status["conditions"] = conditions.merge(other.status.get("conditions"),
                                            status["conditions"])
    failed: list[str] = []
    namespace = other.body["metadata"]["namespace"]
    await writes.patch_status("ShardSet", namespace, other.name, status, failed)
    if failed:
        run.retry.extend(failed)
        return
    await writes.event(other, "ShardSet", "Warning", NODE_ID_CONFLICT, message)


async def refuse_shards(writes: Writes, namespace: str, refused: list[ShardView], run: Pass
                        ) -> None:
    """Shards made by hand under another name than ``<nodeId>-<hash of the key>``:
    refused in their status (once, with a Warning event), never given a Pod, a
    Service or a key map entry. Adopting one would let two Shards hold one key."""
    for shard in refused:
        status = refused_status(shard)
        if not status_differs(shard.status, status):
            continue
        status["conditions"] = conditions.merge(shard.status.get("conditions"),
                                                status["conditions"])
        failed: list[str] = []
        await writes.patch_status("Shard", namespace, shard.name, status, failed)
        run.errors.extend(failed)
        if not failed:
            await writes.event(shard, "Shard", "Warning", NAME_NOT_DERIVED,
                               status["conditions"][0]["message"])


async def without_owner(writes: Writes, namespace: str, shards: list[ShardView], run: Pass
                        ) -> None:
    for shard in shards:
        run.unregistered_reason[shard.name] = (
            NO_SHARD_SET, f"no ShardSet with nodeId {shard.node_id!r} in this namespace")
    await write_shards(writes, namespace, shards, run)
