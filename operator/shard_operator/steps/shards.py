"""Step 1: the Shards the schema asks for are created, and, under
``removedKeyPolicy: Delete``, the ones it no longer lists are deleted.

Each Shard goes on at once to ``then`` (its workloads, step 2): an existing one in
turn, a new one as soon as it is created. Nothing waits for all Shards to be made
(at 1,000 keys the first Pods were made only after every Shard, and every key was
registered only after every Pod)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from ..cache import ShardSetView, ShardView
from ..decisions import Pass, collisions, stale_shards
from ..keys import Key
from ..writes import CONFLICT_READ, Writes


async def ensure(writes: Writes, namespace: str, owner: ShardSetView,
                 wanted: dict[str, tuple[Key, dict[str, Any]]], shards: list[ShardView],
                 run: Pass, then: Callable[[ShardView], Awaitable[None]] | None = None,
                 settled: Callable[[ShardView], bool] | None = None) -> list[ShardView]:
    """The node id's supervised Shards after this step, by name; each but the stale
    ones deleted here was passed to ``then`` (within the pass's concurrency limit),
    except the existing ones ``settled`` finds needing nothing (no coroutine for them)."""
    existing = {s.name: s for s in shards}
    run.problems.extend(collisions(wanted, existing))
    if run.problems:  # an invalid generation applies nothing new
        kept = [existing[name] for name in sorted(existing)]
        if then is not None:
            await writes.bounded(partial(then, s) for s in kept
                                 if settled is None or not settled(s))
        return kept
    stale = stale_shards(owner, existing.values(), wanted)
    for view in stale:
        existing.pop(view.name, None)
    # A Shard cached under another node id's index (e.g. being deleted) is not re-made.
    missing = [body for name, (_, body) in wanted.items()
               if name not in existing and writes.cache.get("Shard", namespace, name) is None]

    async def create(body: dict[str, Any]) -> None:
        view = await writes.create(body, run.errors, conflict=CONFLICT_READ)
        if view is not None:
            existing[view.name] = view
            if then is not None:
                await then(view)

    async def keep(view: ShardView) -> None:
        if then is not None:
            await then(view)

    await writes.bounded([
        *(partial(writes.delete, "Shard", namespace, s, run.errors) for s in stale),
        *(partial(keep, existing[name]) for name in sorted(existing)
          if then is None or settled is None or not settled(existing[name])),
        *(partial(create, body) for body in missing)])
    return [existing[name] for name in sorted(existing)]
