"""The reconcile of one node id, step by step (as the StatefulSet controller's
``stateful_set_control.go``): each step reads the cache, asks :mod:`..decisions` what
to do, and writes through :mod:`..writes`. ``run`` joins them.

A generation with any problem (``render.schema_shards``, a hash collision) applies
nothing new: no Shard is created or deleted for it, while the existing shards keep
their Pods, Services and key map entries.
"""

from __future__ import annotations

from .. import pass_trace, render
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
        wanted, run.problems = render.schema_shards(owner.spec, owner.body, namespace)
        try:
            run.strategy = UpdateStrategy.parse(owner.spec.update_strategy)
        except StrategyError as error:
            run.problems.append(str(error))
    with pass_trace.phase("storage"):
        run.problems.extend(await storage.problems(writes, owner.spec))
    with pass_trace.phase("shards"):
        supervised = await shards.ensure(writes, namespace, owner, wanted, supervised, run)
    with pass_trace.phase("network"):
        await network.ensure(writes, namespace, owner, run)  # before any Pod is made
    with pass_trace.phase("workloads"):
        await workloads.ensure(writes, namespace, owner, supervised, run)
    with pass_trace.phase("keymap"):
        await keymap.ensure(writes, namespace, owner, supervised, run)
    with pass_trace.phase("shard_status"):
        await status.write_shards(writes, namespace, supervised, run)
    with pass_trace.phase("owner_status"):
        await status.write_owner(writes, namespace, owner, supervised, run)
    return run
