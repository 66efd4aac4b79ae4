"""Step 3: the key map lists every shard whose Pod and Service exist, as long as it
fits; a transient write failure is retried, only a lasting refusal is terminal."""

from __future__ import annotations

from .. import render
from ..cache import ShardSetView, ShardView
from ..decisions import Pass, key_map_differs, plan_key_map, still_listed
from ..keys import key_map_name
from ..kube import CALL_ERRORS, ApiError, Kube, transient
from ..reasons import KEY_MAP_PENDING, KEY_MAP_UPDATE_FAILED
from ..writes import Writes


async def ensure(writes: Writes, namespace: str, owner: ShardSetView,
                 shards: list[ShardView], run: Pass) -> None:
    name = key_map_name(owner.node_id)
    plan = plan_key_map(owner.node_id, namespace, shards, run.outcomes)
    run.unregistered_reason.update(plan.unregistered)
    desired = render.key_map(name, namespace, plan.data, owner.body)
    current = writes.cache.get("ConfigMap", namespace, name)
    kube: Kube = writes.kube
    try:
        if current is None:
            await writes.send("ConfigMap", "create", namespace, lambda: kube.create(desired))
        elif key_map_differs(current, desired, owner.uid):
            await writes.send("ConfigMap", "replace", namespace, lambda: kube.replace(desired))
    except CALL_ERRORS as error:
        message = error.message if isinstance(error, ApiError) else (
            f"{type(error).__name__}: {error}")
        if isinstance(error, ApiError) and error.conflict and current is None:
            # Created meanwhile (or the cache lags): read it and retry next pass.
            await writes.read("ConfigMap", namespace, name)
        # What the map still lists stays registered; only the shards this write was
        # adding are concerned, and only a refusal that a retry cannot fix is terminal.
        run.registered = still_listed(plan, current.data if current is not None else {})
        if transient(error):
            run.retry.append(f"key map {name} not written yet: {message}")
            reason = (KEY_MAP_PENDING, f"the key map write is retried: {message}")
        else:
            run.errors.append(f"key map update failed: {message}")
            reason = (KEY_MAP_UPDATE_FAILED, message)
        for shard_name in plan.entries.keys() - run.registered:
            run.unregistered_reason[shard_name] = reason
        return
    run.registered = set(plan.entries)
