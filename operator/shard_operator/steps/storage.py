"""Before step 1: a volumeClaimTemplate that names a StorageClass which does not exist
makes the generation invalid, so that no pod is replaced onto a claim that would stay
Pending forever (a rollout would otherwise take shards down for good)."""

from __future__ import annotations

from ..kube import ApiError
from ..spec import ShardSetSpec
from ..writes import Writes

FIELD = "spec.volumeClaimTemplate.spec.storageClassName"


async def problems(writes: Writes, spec: ShardSetSpec) -> list[str]:
    """What is wrong with the claim template that only the cluster can tell. A
    StorageClass the operator may not read (namespaced mode has no cluster role) is
    taken on trust: its claims then show Pending in the Shards' status."""
    template = spec.volume_claim_template
    name = ((template or {}).get("spec") or {}).get("storageClassName")
    if not name:  # none, or "" (no class: a pre-bound volume), or the default class
        return []
    try:
        await writes.kube.get("StorageClass", None, name)
    except ApiError as error:
        if error.not_found:
            return [f"{FIELD}: StorageClass {name!r} does not exist"]
    return []
