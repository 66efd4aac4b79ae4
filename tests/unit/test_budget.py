"""The ShardSet's PodDisruptionBudget follows its update strategy (pure)."""

from __future__ import annotations

from shard_operator.budget import budget_patch, pod_disruption_budget
from shard_operator.render import owned_labels
from shard_operator.rollout import UpdateStrategy

SHARDSET = {"metadata": {"name": "node-1", "namespace": "ns", "uid": "u-9"},
            "spec": {"nodeId": "node-1"}}


def test_budget_selects_the_shard_pods_and_follows_max_unavailable() -> None:
    pdb = pod_disruption_budget(SHARDSET, UpdateStrategy(max_unavailable="10%"), 25)
    assert pdb["metadata"]["name"] == "shard-budget-node-1"
    assert pdb["metadata"]["ownerReferences"][0]["uid"] == "u-9"
    assert pdb["spec"]["minAvailable"] == 25 - 3  # 10% of 25, rounded up
    assert pod_disruption_budget(SHARDSET, UpdateStrategy(), 4)["spec"]["minAvailable"] == 3
    assert pod_disruption_budget(SHARDSET, UpdateStrategy(), 0)["spec"]["minAvailable"] == 0
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    selector = pdb["spec"]["selector"]["matchLabels"]
    # every label of the selector is one a shard pod carries
    assert selector.items() <= owned_labels("node-1", "node-1-abc").items()
    assert not selector.items() <= owned_labels("node-2", "node-2-abc").items()


def test_patch_only_what_changed() -> None:
    one = pod_disruption_budget(SHARDSET, UpdateStrategy(), 10)
    two = pod_disruption_budget(SHARDSET, UpdateStrategy(max_unavailable=2), 10)
    assert budget_patch(one, one) == {}
    assert budget_patch(one, two) == {"spec": {"minAvailable": 8}}
