"""The ShardSet's PodDisruptionBudget follows its update strategy (pure)."""

from __future__ import annotations

from shard_operator.budget import budget_patch, pod_disruption_budget
from shard_operator.render import owned_labels
from shard_operator.rollout import UpdateStrategy

SHARDSET = {"metadata": {"name": "node-1", "namespace": "ns", "uid": "u-9"},
            "spec": {"nodeId": "node-1"}}


def test_budget_selects_the_shard_pods_and_follows_max_unavailable() -> None:
    pdb = pod_disruption_budget(SHARDSET, UpdateStrategy(max_unavailable="10%"))
    assert pdb["metadata"]["name"] == "shard-budget-node-1"
    assert pdb["metadata"]["ownerReferences"][0]["uid"] == "u-9"
    assert pdb["spec"]["maxUnavailable"] == "10%"
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    selector = pdb["spec"]["selector"]["matchLabels"]
    # every label of the selector is one a shard pod carries
    assert selector.items() <= owned_labels("node-1", "node-1-abc").items()
    assert not selector.items() <= owned_labels("node-2", "node-2-abc").items()


def test_patch_only_what_changed() -> None:
    one = pod_disruption_budget(SHARDSET, UpdateStrategy())
    two = pod_disruption_budget(SHARDSET, UpdateStrategy(max_unavailable=2))
    assert budget_patch(one, one) == {}
    assert budget_patch(one, two) == {"spec": {"maxUnavailable": 2}}
