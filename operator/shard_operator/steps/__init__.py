"""The reconcile of one node id, step by step (as the StatefulSet controller's
``stateful_set_control.go``): each step reads the cache, asks :mod:`..decisions` what
to do, and writes through :mod:`..writes`. ``run`` joins them.

A generation with any problem (``render.schema_shards``, a hash collision) applies
nothing new: no Shard is created or deleted for it, while the existing shards keep
their Pods, Services and key map entries.
"""

from __future__ import annotations

import asyncio

from .. import desired, pass_trace
from ..cache import ShardView
from ..decisions import Pass, split_refused
from ..rollout import StrategyError, UpdateStrategy
from ..writes import Writes
from . import keymap, network, shards, status, storage, workloads


async def run(writes: Writes, namespace: str, node_id: str, run: Pass | None = None) -> Pass:
    """Converge one node id; ``run`` (given, or a new one) says what failed (``errors``,
    ``retry``) and when to look again with no event (``recheck``), also when a step
    raised."""
    cache = writes.cache
    sets = [s for s in cache.shardsets(namespace, node_id) if not s.deleting]
    found = [s for s in cache.shards(namespace, node_id) if not s.deleting]
    run = run if run is not None else Pass()
    if not sets:
        await status.without_owner(writes, namespace, found, run)
        return run
    owner, others = sets[0], sets[1:]
    with pass_trace.phase("refusals"):
        for other in others:
            await status.refuse_duplicate(writes, other, owner, run)
        supervised, refused = split_refused(found)
        await status.refuse_shards(writes, namespace, refused, run)
    with pass_trace.phase("schema"):
        wanted, run.problems = desired.of(writes.cache).schema_shards(owner, namespace)
        try:
            run.strategy = UpdateStrategy.parse(owner.spec.update_strategy)
        except StrategyError as error:
            run.problems.append(str(error))
    with pass_trace.phase("storage"):
        run.problems.extend(await storage.problems(writes, owner.spec))
    pass_trace.note("shards", len(supervised))
    with pass_trace.phase("network"):
        await network.ensure(writes, namespace, owner, run)  # before any Pod is made
    slices = keymap.Slices(writes, namespace, owner)

    def made(shard: ShardView) -> None:
        outcome = run.outcomes.get(shard.name)
        if outcome is not None and outcome.pod is not None and outcome.service is not None:
            slices.made(shard)

    def settled(shard: ShardView) -> bool:
        """Nothing to do for the shard's workloads in this pass (see workloads.settled)."""
        if not workloads.settled(writes, namespace, shard, owner, run):
            return False
        made(shard)
        return True

    async def workloads_of(shard: ShardView) -> None:
        await workloads.ensure_one(writes, namespace, shard, owner, run)
        made(shard)

    try:
        with pass_trace.phase("shards+workloads"):
            supervised = await shards.ensure(writes, namespace, owner, wanted, supervised, run,
                                             then=workloads_of, settled=settled)
    finally:
        await slices.close()
    desired.of(writes.cache).keep_only(namespace, owner.node_id, {s.name for s in supervised})
    with pass_trace.phase("rollout"):
        await workloads.finish(writes, namespace, owner, supervised, run)
    with pass_trace.phase("keymap"):
        await keymap.ensure(writes, namespace, owner, supervised, run)
    # The ShardSet's status does not depend on its Shards' (only on what this pass saw):
    # written beside them, it is not held back behind thousands of Shard status writes.
    with pass_trace.phase("status"):
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(status.write_owner(writes, namespace, owner, supervised, run))
                group.create_task(status.write_shards(writes, namespace, supervised, run))
        except BaseExceptionGroup as failed:  # as if awaited one after the other
            raise failed.exceptions[0] from None
    return run
