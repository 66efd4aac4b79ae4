"""Step 2: each supervised Shard's Service and Pod are made or restored, and pods of an
outdated template are rolled, a quarter of the shards at a time."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from .. import render
from ..cache import ShardSetView, ShardView
from ..constants import ANNOTATION_TEMPLATE_HASH
from ..decisions import Pass, ShardOutcome, metadata_patch, pods_to_roll, service_patch
from ..writes import CONFLICT_IGNORE, Writes


async def ensure(writes: Writes, namespace: str, owner: ShardSetView, shards: list[ShardView],
                 run: Pass) -> None:
    template = owner.spec.template
    await writes.bounded(partial(_ensure_one, writes, namespace, s, template, run)
                         for s in shards if s.key is not None)
    outdated = [name for name, o in run.outcomes.items() if o.outdated]
    if not outdated:
        return
    # A template the API server refuses must never take down running Pods: ask first.
    replacement = run.outcomes[outdated[0]].replacement
    assert replacement is not None
    refusal = await writes.refused(replacement)
    if refusal is not None:
        run.errors.append("the new pod template is refused by the API server, running "
                          f"pods are kept: {refusal}")
        return
    await writes.bounded(
        partial(writes.delete, "Pod", namespace, run.outcomes[n].pod, run.errors)
        for n in pods_to_roll(run.outcomes))


async def _ensure_one(writes: Writes, namespace: str, shard: ShardView,
                      template: dict[str, Any] | None, run: Pass) -> None:
    """The Service and the Pod of one Shard, made or restored side by side."""
    outcome = run.outcomes.setdefault(shard.name, ShardOutcome())
    full = {"metadata": {**shard.body["metadata"]}, "spec": shard.body["spec"]}
    await asyncio.gather(_service(writes, namespace, shard, full, run, outcome),
                         _pod(writes, namespace, shard, full, template, run, outcome))


async def _create(writes: Writes, body: dict[str, Any], run: Pass, outcome: ShardOutcome
                  ) -> Any:
    failed: list[str] = []
    view = await writes.create(body, failed, conflict=CONFLICT_IGNORE)
    if failed:
        outcome.error = failed[0]
        run.errors.extend(failed)
    return view


async def _service(writes: Writes, namespace: str, shard: ShardView, full: dict[str, Any],
                   run: Pass, outcome: ShardOutcome) -> None:
    assert shard.key is not None
    desired = render.service(full, shard.key)
    service = writes.cache.get("Service", namespace, shard.name)
    if service is None:
        service = await _create(writes, desired, run, outcome)
    elif not service.deleting:
        patch = service_patch(service, desired, shard.uid)
        if patch:
            service = await writes.patch("Service", namespace, shard.name, patch, run.errors)
    outcome.service = service if service is not None and not service.deleting else None


async def _pod(writes: Writes, namespace: str, shard: ShardView, full: dict[str, Any],
               template: dict[str, Any] | None, run: Pass, outcome: ShardOutcome) -> None:
    assert shard.key is not None
    desired = render.pod(full, shard.key, template)
    pod = writes.cache.get("Pod", namespace, shard.name)
    if pod is None:
        pod = await _create(writes, desired, run, outcome)
        outcome.pod_event_due = not outcome.error
    elif not pod.deleting:
        patch = metadata_patch(pod, desired, shard.uid)
        if patch:
            pod = await writes.patch("Pod", namespace, shard.name, patch, run.errors) or pod
        outcome.outdated = (
            pod.template_hash != desired["metadata"]["annotations"][ANNOTATION_TEMPLATE_HASH])
        outcome.replacement = desired if outcome.outdated else None
    outcome.pod = pod if pod is not None and not pod.deleting else None
