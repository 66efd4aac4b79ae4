"""Step 2a, before any Pod is made: the ShardSet's NetworkPolicy (:mod:`..netpol`), made
or brought back: ingress to its shard pods on the shard port, only from its clients.

A failed write is reported (``ReconcileError``) and retried like any other; it does not
hold the shards back (their Pods are made regardless)."""

from __future__ import annotations

from .. import netpol
from ..cache import ShardSetView
from ..decisions import Pass
from ..writes import CONFLICT_IGNORE, Writes


async def ensure(writes: Writes, namespace: str, owner: ShardSetView, run: Pass) -> None:
    desired = netpol.network_policy(owner.body, owner.node_id, owner.spec.client_selector)
    name = desired["metadata"]["name"]
    current = writes.cache.get("NetworkPolicy", namespace, name)
    if current is None:
        await writes.create(desired, run.errors, conflict=CONFLICT_IGNORE)
    elif not current.deleting:
        patch = netpol.policy_patch(current.as_object(), desired, owner.uid)
        if patch:
            await writes.patch("NetworkPolicy", namespace, name, patch, run.errors)
