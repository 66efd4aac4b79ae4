"""A shard's own PersistentVolumeClaim: the desired claim, how an existing one must
change, and the pod volume that mounts it. Pure functions.

- One claim per Shard, named after it (as CloudNativePG names an instance's claim), so a
  recreated pod, or a re-created ShardSet with the same key, gets the same claim back.
- ``persistentVolumeClaimRetentionPolicy.whenDeleted``: ``Retain`` (the default) leaves
  the claim without an owner, so deleting the Shard or the ShardSet never deletes it;
  ``Delete`` makes the Shard its owner, and the garbage collector deletes it with the
  Shard. The operator itself never deletes a claim.
- A grown storage request is patched into existing claims; the API server refuses it
  where the StorageClass cannot expand, and the operator reports that. A claim is never
  shrunk (Kubernetes forbids it): that too is reported.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .constants import LABEL_MANAGED_BY, LABEL_NAME, LABEL_NODE_ID, LABEL_SHARD, MANAGER
from .quantity import parse_quantity

DATA_VOLUME = "data"
RETAIN = "Retain"
DELETE = "Delete"


def claim_name(shard: str) -> str:
    return shard


def retention(spec: dict[str, Any]) -> str:
    """``spec.persistentVolumeClaimRetentionPolicy.whenDeleted`` (default Retain)."""
    policy = spec.get("persistentVolumeClaimRetentionPolicy") or {}
    return str(policy.get("whenDeleted", RETAIN))


def requested_storage(claim_spec: dict[str, Any]) -> str | None:
    return ((claim_spec.get("resources") or {}).get("requests") or {}).get("storage")


def claim_owner(shard_body: dict[str, Any]) -> dict[str, Any]:
    meta = shard_body["metadata"]
    return {"apiVersion": shard_body.get("apiVersion", "shards.anoma.net/v1alpha1"),
            "kind": "Shard", "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": False}


def desired_claim(shard_body: dict[str, Any], shardset_spec: dict[str, Any]
                  ) -> dict[str, Any] | None:
    """The Shard's claim from the ShardSet's ``spec.volumeClaimTemplate``; None without
    one (the data directory is then an emptyDir that lives as long as the pod)."""
    template = shardset_spec.get("volumeClaimTemplate")
    if not template:
        return None
    meta = shard_body["metadata"]
    node_id = shard_body["spec"]["nodeId"]
    template_meta = template.get("metadata") or {}
    spec = copy.deepcopy(template.get("spec") or {})
    spec.setdefault("accessModes", ["ReadWriteOnce"])
    labels = {**(template_meta.get("labels") or {}), LABEL_MANAGED_BY: MANAGER,
              LABEL_NAME: "shard-data", LABEL_NODE_ID: node_id, LABEL_SHARD: meta["name"]}
    metadata: dict[str, Any] = {"name": claim_name(meta["name"]),
                                "namespace": meta["namespace"], "labels": labels}
    if template_meta.get("annotations"):
        metadata["annotations"] = dict(template_meta["annotations"])
    if retention(shardset_spec) == DELETE:
        metadata["ownerReferences"] = [claim_owner(shard_body)]
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata,
            "spec": spec}


@dataclass(frozen=True)
class ClaimChange:
    """How an existing claim must change: a patch (empty: none) and what cannot be done."""
    patch: dict[str, Any]
    problem: str = ""


def _quantity(text: str | None) -> Decimal | None:
    return None if text is None else parse_quantity(text)


def claim_change(current: dict[str, Any], desired: dict[str, Any], shard_uid: str
                 ) -> ClaimChange:
    """What to patch into ``current`` so it matches ``desired``: a larger storage
    request, and the Shard as owner added (Delete) or removed (Retain); and what the
    template asks that a claim cannot do (shrink, change its class or access modes: the
    existing claim is kept as it is)."""
    patch: dict[str, Any] = {}
    problems = []
    name = current["metadata"]["name"]
    current_spec = current.get("spec") or {}
    want = requested_storage(desired["spec"])
    have = current_spec.get("resources", {}).get("requests", {}).get("storage")
    want_q, have_q = _quantity(want), _quantity(have)
    if want_q is not None and have_q is not None:
        if want_q > have_q:
            patch["spec"] = {"resources": {"requests": {"storage": want}}}
        elif want_q < have_q:
            problems.append(f"claim {name} requests {have}; the template asks {want}, and "
                            "a claim cannot shrink")
    want_class, have_class = desired["spec"].get("storageClassName"), current_spec.get(
        "storageClassName")
    if want_class is not None and have_class is not None and want_class != have_class:
        problems.append(f"claim {name} has StorageClass {have_class}; the template asks "
                        f"{want_class}, and a claim's class cannot change (delete the claim "
                        "to have it made again, empty, in the new class)")
    want_modes = sorted(desired["spec"].get("accessModes") or [])
    have_modes = sorted(current_spec.get("accessModes") or [])
    if want_modes and have_modes and want_modes != have_modes:
        problems.append(f"claim {name} has access modes {', '.join(have_modes)}; the "
                        f"template asks {', '.join(want_modes)}, and a claim's access modes "
                        "cannot change")
    problem = "; ".join(problems)
    owners = current["metadata"].get("ownerReferences") or []
    ours = [o for o in owners if o.get("uid") == shard_uid]
    others = [o for o in owners if o.get("uid") != shard_uid]
    wanted = desired["metadata"].get("ownerReferences") or []
    if bool(ours) != bool(wanted):
        patch.setdefault("metadata", {})["ownerReferences"] = others + wanted
    return ClaimChange(patch, problem)


def adoptable(current: dict[str, Any], shard_name: str) -> bool:
    """Whether an existing claim of this name is the shard's: made by this operator for
    this shard (a retained claim taken up again), not someone else's claim."""
    labels = current["metadata"].get("labels") or {}
    return labels.get(LABEL_MANAGED_BY) == MANAGER and labels.get(LABEL_SHARD) == shard_name


def with_claim(pod_spec: dict[str, Any], shard: str) -> dict[str, Any]:
    """``pod_spec`` with its data volume backed by the shard's claim."""
    volume = {"name": DATA_VOLUME, "persistentVolumeClaim": {"claimName": claim_name(shard)}}
    volumes = [v for v in pod_spec.get("volumes") or [] if v.get("name") != DATA_VOLUME]
    return {**pod_spec, "volumes": [*volumes, volume]}
