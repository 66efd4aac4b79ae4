"""The PodDisruptionBudget of a ShardSet's shard pods: a drain evicts no more shards at
once than a rollout may replace (``updateStrategy.rollingUpdate.maxUnavailable``), and a
broken shard never blocks a drain (``unhealthyPodEvictionPolicy: AlwaysAllow``). Pure.

The budget says it as ``minAvailable: <desired - maxUnavailable>``, an integer the
operator keeps up to date as shards come and go. ``maxUnavailable`` (or a percentage)
would need the pods' controller to have a scale subresource: the disruption controller
reads the expected count from it, and a Shard has none, so such a budget would allow no
eviction at all."""

from __future__ import annotations

from typing import Any

from .constants import (
    API_VERSION,
    BUDGET_PREFIX,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_NODE_ID,
    MANAGER,
)
from .rollout import UpdateStrategy


def budget_name(node_id: str) -> str:
    return BUDGET_PREFIX + node_id


def shard_pod_selector(node_id: str) -> dict[str, str]:
    """The labels every shard pod of ``node_id`` carries (``render.owned_labels``)."""
    return {LABEL_MANAGED_BY: MANAGER, LABEL_NAME: "shard", LABEL_NODE_ID: node_id}


def pod_disruption_budget(shardset: dict[str, Any], strategy: UpdateStrategy, desired: int
                          ) -> dict[str, Any]:
    meta = shardset["metadata"]
    node_id = shardset["spec"]["nodeId"]
    return {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {
            "name": budget_name(node_id), "namespace": meta["namespace"],
            "labels": {LABEL_MANAGED_BY: MANAGER, LABEL_NAME: "shard-budget",
                       LABEL_NODE_ID: node_id},
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": "ShardSet",
                                 "name": meta["name"], "uid": meta["uid"],
                                 "controller": True}],
        },
        "spec": {"minAvailable": max(0, desired - strategy.budget(max(desired, 1))),
                 "selector": {"matchLabels": shard_pod_selector(node_id)},
                 "unhealthyPodEvictionPolicy": "AlwaysAllow"},
    }


def budget_patch(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """The spec fields of ``desired`` that ``current`` lacks (empty: nothing to do)."""
    spec = current.get("spec") or {}
    changed = {k: v for k, v in desired["spec"].items() if spec.get(k) != v}
    return {"spec": changed} if changed else {}
