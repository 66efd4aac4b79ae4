"""The ShardSet's NetworkPolicy (pure, :mod:`shard_operator.netpol`), and the step that
applies it, on the in-memory API server (:mod:`tests.unit.fakekube`)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shard_operator.budget import pod_disruption_budget
from shard_operator.cache import Cache, NetworkPolicyView
from shard_operator.netpol import (
    label_selector,
    merge_diff,
    network_policy,
    peers,
    policy_patch,
)
from shard_operator.render import owned_labels
from shard_operator.rollout import UpdateStrategy
from shard_operator.spec import ShardSetSpec
from tests.unit.fakekube import World, merged

SHARDSET = {"metadata": {"name": "set-1", "namespace": "ns", "uid": "u-9"}}
CLIENTS = {"podSelector": {"matchLabels": {"shards.anoma.net/client": "node-1"}}}


def test_the_policy_is_named_owned_and_selects_exactly_the_shard_pods() -> None:
    policy = network_policy(SHARDSET, "node-1")
    meta, spec = policy["metadata"], policy["spec"]
    assert (policy["apiVersion"], policy["kind"]) == ("networking.k8s.io/v1", "NetworkPolicy")
    assert (meta["name"], meta["namespace"]) == ("shard-clients-node-1", "ns")
    assert meta["ownerReferences"] == [{
        "apiVersion": "shards.anoma.net/v1alpha1", "kind": "ShardSet", "name": "set-1",
        "uid": "u-9", "controller": True}]
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "shard-operator"
    selector = spec["podSelector"]["matchLabels"]
    # the same pods as the disruption budget: every label is one a shard pod carries
    budget = pod_disruption_budget({**SHARDSET, "spec": {"nodeId": "node-1"}},
                                   UpdateStrategy(), 1)
    assert selector == budget["spec"]["selector"]["matchLabels"]
    assert selector.items() <= owned_labels("node-1", "node-1-abc").items()
    assert not selector.items() <= owned_labels("node-10", "node-10-abc").items()
    assert spec["policyTypes"] == ["Ingress"]  # egress is not restricted
    (rule,) = spec["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert rule["from"] == [CLIENTS]  # by default: the labelled clients only


PEERS = [
    ("pods of the namespace",
     [{"podSelector": {"matchLabels": {"app": "ordering"}}}],
     [{"podSelector": {"matchLabels": {"app": "ordering"}}}]),
    ("every pod of some namespaces",
     [{"namespaceSelector": {"matchLabels": {"team": "anoma"}}}],
     [{"namespaceSelector": {"matchLabels": {"team": "anoma"}}}]),
    ("those pods of those namespaces, with expressions",
     [{"podSelector": {"matchExpressions": [{"key": "app", "operator": "In",
                                              "values": ["a", "b"]}]},
       "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ordering"}}}],
     [{"podSelector": {"matchExpressions": [{"key": "app", "operator": "In",
                                              "values": ["a", "b"]}]},
       "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ordering"}}}]),
    ("empty parts left out, as the API server stores them",
     [{"podSelector": {"matchLabels": {}, "matchExpressions": [
         {"key": "tier", "operator": "Exists", "values": []}]}},
      {"namespaceSelector": {"matchLabels": {}}}],
     [{"podSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}},
      {"namespaceSelector": {}}]),
    ("an entry without a selector is skipped (it would admit every source)",
     [{}, {"podSelector": None}],
     []),
    ("the default peer, or a repeated one, listed once",
     [CLIENTS, {"podSelector": {"matchLabels": {"app": "x"}}},
      {"podSelector": {"matchLabels": {"app": "x"}}}],
     [{"podSelector": {"matchLabels": {"app": "x"}}}]),
]


@pytest.mark.parametrize(("selector", "added"), [c[1:] for c in PEERS],
                         ids=[c[0] for c in PEERS])
def test_client_selector_entries_become_peers_after_the_labelled_clients(
        selector: list[dict[str, Any]], added: list[dict[str, Any]]) -> None:
    assert peers("node-1", selector) == [CLIENTS, *added]
    policy = network_policy(SHARDSET, "node-1", selector)
    assert policy["spec"]["ingress"][0]["from"] == [CLIENTS, *added]
    assert policy["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8080}]


def test_label_selector_keeps_an_empty_selector_empty() -> None:
    assert label_selector({}) == {}  # "everything", as in the API
    assert label_selector({"matchLabels": {"a": "b"}}) == {"matchLabels": {"a": "b"}}


def test_the_spec_parses_client_selector() -> None:
    entry = {"namespaceSelector": {"matchLabels": {"team": "a"}}}
    assert ShardSetSpec.of({"nodeId": "n", "clientSelector": [entry]}).client_selector == (
        entry,)
    assert ShardSetSpec.of({"nodeId": "n"}).client_selector == ()


def stored(policy: dict[str, Any]) -> dict[str, Any]:
    """As the API server returns it: its own metadata added."""
    body = copy.deepcopy(policy)
    body["metadata"].update(uid="np-1", resourceVersion="7", generation=1)
    return body


DRIFT = [
    ("nothing changed", lambda p: None, {}),
    ("a label", lambda p: p["metadata"]["labels"].update({"shards.anoma.net/node-id": "x"}),
     {"metadata": {"labels": {"shards.anoma.net/node-id": "node-1"}}}),
    ("a foreign label is left alone", lambda p: p["metadata"]["labels"].update({"team": "a"}),
     {}),
    ("the owner reference stripped", lambda p: p["metadata"].pop("ownerReferences"),
     {"metadata": {"ownerReferences": [{
         "apiVersion": "shards.anoma.net/v1alpha1", "kind": "ShardSet", "name": "set-1",
         "uid": "u-9", "controller": True}]}}),
]


@pytest.mark.parametrize(("edit", "patch"), [c[1:] for c in DRIFT], ids=[c[0] for c in DRIFT])
def test_drifted_metadata_is_restored(edit: Any, patch: dict[str, Any]) -> None:
    desired = network_policy(SHARDSET, "node-1")
    current = stored(desired)
    edit(current)
    assert policy_patch(current, desired, "u-9") == patch


SPEC_DRIFT = [
    ("a port opened", lambda s: s["ingress"][0]["ports"].append({"protocol": "TCP",
                                                                   "port": 9000})),
    ("a peer added", lambda s: s["ingress"][0]["from"].append({"namespaceSelector": {}})),
    ("a rule that admits everything", lambda s: s["ingress"].append({})),
    ("the pod selector narrowed", lambda s: s["podSelector"]["matchLabels"].update(
        {"extra": "label"})),
    ("egress added", lambda s: s.update(policyTypes=["Ingress", "Egress"], egress=[])),
    ("the rules removed", lambda s: s.pop("ingress")),
]


@pytest.mark.parametrize("edit", [c[1] for c in SPEC_DRIFT], ids=[c[0] for c in SPEC_DRIFT])
def test_a_drifted_spec_is_replaced_as_a_whole(edit: Any) -> None:
    desired = network_policy(SHARDSET, "node-1")
    current = stored(desired)
    edit(current["spec"])
    patch = policy_patch(current, desired, "u-9")
    assert set(patch) == {"spec"}
    # as a merge patch: every added key removed (null), not merged into the rest
    assert merged(copy.deepcopy(current), patch)["spec"] == desired["spec"]


def test_a_label_added_to_the_pod_selector_is_removed_not_merged() -> None:
    desired = network_policy(SHARDSET, "node-1")
    current = stored(desired)
    current["spec"]["podSelector"]["matchLabels"]["extra"] = "x"
    assert policy_patch(current, desired, "u-9") == {
        "spec": {"podSelector": {"matchLabels": {"extra": None}}}}


def test_a_changed_client_selector_replaces_the_peers() -> None:
    before = network_policy(SHARDSET, "node-1")
    after = network_policy(SHARDSET, "node-1", [{"namespaceSelector": {
        "matchLabels": {"team": "a"}}}])
    patch = policy_patch(stored(before), after, "u-9")
    assert patch == {"spec": {"ingress": after["spec"]["ingress"]}}  # a list: sent whole
    assert patch["spec"]["ingress"][0]["from"] == [
        CLIENTS, {"namespaceSelector": {"matchLabels": {"team": "a"}}}]


def test_the_cache_keeps_client_policies_by_node_id() -> None:
    assert Cache.relevant("NetworkPolicy", "shard-clients-node-1")
    assert not Cache.relevant("NetworkPolicy", "default-deny")
    cache = Cache()
    assert cache.node_of("NetworkPolicy", "ns", "shard-clients-node-1") == "node-1"
    assert cache.node_of("NetworkPolicy", "ns", "default-deny") is None
    view = cache.put("NetworkPolicy", "ns", stored(network_policy(SHARDSET, "node-1")))
    assert isinstance(view, NetworkPolicyView)
    assert policy_patch(view.as_object(), network_policy(SHARDSET, "node-1"), "u-9") == {}


# ----- the step, on the in-memory API server -----------------------------------------------

async def test_the_policy_is_made_before_any_pod_then_left_alone() -> None:
    world = World()
    world.shardset("set", "node-1", [{"key": ["a"]}, {"key": ["b"]}])
    await world.reconcile()
    creates = [(kind, name) for verb, kind, name in world.kube.writes if verb == "create"]
    first_pod = next(i for i, (kind, _) in enumerate(creates) if kind == "Pod")
    assert creates.index(("NetworkPolicy", "shard-clients-node-1")) < first_pod
    world.pods_ready()
    await world.reconcile()
    before = len(world.kube.writes)
    assert await world.reconcile() == []
    assert [w for w in world.kube.writes[before:] if w[1] == "NetworkPolicy"] == []
    policy = world.kube.stored("NetworkPolicy", "shard-clients-node-1")
    assert policy["metadata"]["ownerReferences"][0]["name"] == "set"


async def test_drift_and_a_client_selector_change_are_applied() -> None:
    world = World()
    world.shardset("set", "node-1", [{"key": ["a"]}])
    await world.reconcile()
    policy = world.kube.stored("NetworkPolicy", "shard-clients-node-1")
    tampered = copy.deepcopy(policy)
    tampered["spec"]["ingress"] = [{}]  # admit everything
    world.add("NetworkPolicy", tampered)
    await world.reconcile()
    assert world.kube.stored("NetworkPolicy", "shard-clients-node-1")["spec"] == policy["spec"]

    body = world.kube.stored("ShardSet", "set")
    body["metadata"]["generation"] = 2
    body["spec"]["clientSelector"] = [{"namespaceSelector": {"matchLabels": {"t": "a"}}}]
    world.add("ShardSet", body)
    await world.reconcile()
    assert world.kube.stored("NetworkPolicy", "shard-clients-node-1")["spec"]["ingress"][0][
        "from"] == [{"podSelector": {"matchLabels": {"shards.anoma.net/client": "node-1"}}},
                    {"namespaceSelector": {"matchLabels": {"t": "a"}}}]


async def test_a_deleted_policy_is_made_again() -> None:
    world = World()
    world.shardset("set", "node-1", [{"key": ["a"]}])
    await world.reconcile()
    world.kube.objects.pop(("NetworkPolicy", "ns", "shard-clients-node-1"))
    world.cache.remove("NetworkPolicy", "ns", "shard-clients-node-1")
    await world.reconcile()
    assert world.kube.stored("NetworkPolicy", "shard-clients-node-1") is not None


MERGE = [
    ("equal", {"a": 1, "m": {"x": 1}}, {"a": 1, "m": {"x": 1}}, {}),
    ("an added key removed", {"a": 1, "b": 2}, {"a": 1}, {"b": None}),
    ("a nested key removed, the rest kept", {"m": {"x": 1, "y": 2}}, {"m": {"x": 1}},
     {"m": {"y": None}}),
    ("a list sent whole", {"l": [1, 2, 3]}, {"l": [1, 2]}, {"l": [1, 2]}),
    ("a missing map sent whole", {}, {"m": {}}, {"m": {}}),
    ("a map in place of a value", {"m": 1}, {"m": {"x": 1}}, {"m": {"x": 1}}),
]


@pytest.mark.parametrize(("current", "desired", "patch"), [c[1:] for c in MERGE],
                         ids=[c[0] for c in MERGE])
def test_merge_diff_turns_current_into_desired(current: dict[str, Any],
                                               desired: dict[str, Any],
                                               patch: dict[str, Any]) -> None:
    assert merge_diff(current, desired) == patch
    assert merged(copy.deepcopy(current), patch) == desired
