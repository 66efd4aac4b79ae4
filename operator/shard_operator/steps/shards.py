"""Step 1: the Shards the schema asks for are created, and, under
``removedKeyPolicy: Delete``, the ones it no longer lists are deleted."""

from __future__ import annotations

from functools import partial
from typing import Any

from ..cache import ShardSetView, ShardView
from ..decisions import Pass, collisions, stale_shards
from ..keys import Key
from ..writes import CONFLICT_READ, Writes


async def ensure(writes: Writes, namespace: str, owner: ShardSetView,
                 wanted: dict[str, tuple[Key, dict[str, Any]]], shards: list[ShardView],
                 run: Pass) -> list[ShardView]:
    """The node id's supervised Shards after this step, by name."""
    existing = {s.name: s for s in shards}
    run.problems.extend(collisions(wanted, existing))
    if run.problems:  # an invalid generation applies nothing new
        return [existing[name] for name in sorted(existing)]
    # A Shard cached under another node id's index (e.g. being deleted) is not re-made.
    missing = [body for name, (_, body) in wanted.items()
               if name not in existing and writes.cache.get("Shard", namespace, name) is None]
    created = await writes.bounded(
        partial(writes.create, body, run.errors, conflict=CONFLICT_READ) for body in missing)
    for view in created:
        if view is not None:
            existing[view.name] = view
    stale = stale_shards(owner, existing.values(), wanted)
    await writes.bounded(partial(writes.delete, "Shard", namespace, s, run.errors) for s in stale)
    for view in stale:
        existing.pop(view.name, None)
    return [existing[name] for name in sorted(existing)]
