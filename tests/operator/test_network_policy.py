"""The NetworkPolicy of each ShardSet, on the API server with the operator running.

The local cluster has no CNI that enforces NetworkPolicy (KWOK pods have no network at
all), so these tests check the objects and what they select, not packets: every label
selector of the policy is evaluated by the API server's own label-selector query
(``kubectl get pods -l ...``, ``kubectl get namespaces -l ...``) and compared with the
pods that should match."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from localcluster import LocalCluster
from shard_operator import netpol
from tests.conftest import wait_for
from tests.operator.conftest import CONFORMANCE_SCHEMA, Kubectl, shardset, wait_ready

CLIENT_LABEL = "shards.anoma.net/client"


def policy_name(node_id: str) -> str:
    return f"shard-clients-{node_id}"


def selector_query(selector: dict[str, Any]) -> str:
    """A LabelSelector as ``-l`` syntax (the API server evaluates it)."""
    terms = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for e in selector.get("matchExpressions") or ():
        op, key, values = e["operator"], e["key"], ",".join(e.get("values") or ())
        terms.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                      "Exists": key, "DoesNotExist": f"!{key}"}[op])
    return ",".join(terms)


def pods_selected(cluster: LocalCluster, namespace: str, selector: dict[str, Any]
                  ) -> set[str]:
    """``namespace/name`` of the pods of ``namespace`` that ``selector`` selects."""
    query = selector_query(selector)
    out = cluster.kubectl("get", "pods", "-n", namespace, *(["-l", query] if query else []),
                          "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    return {f"{namespace}/{name}" for name in out}


def admitted(cluster: LocalCluster, policy: dict[str, Any]) -> set[str]:
    """The pods (``namespace/name``) the policy's ingress admits, peer by peer, as a
    NetworkPolicy reads its ``from``: podSelector alone (the policy's namespace),
    namespaceSelector alone (all their pods) or both (those pods of those namespaces)."""
    home = policy["metadata"]["namespace"]
    found: set[str] = set()
    for rule in policy["spec"]["ingress"]:
        for peer in rule["from"]:
            assert set(peer) <= {"podSelector", "namespaceSelector"}, peer  # never ipBlock
            namespaces = [home]
            if "namespaceSelector" in peer:
                query = selector_query(peer["namespaceSelector"])
                namespaces = cluster.kubectl(
                    "get", "namespaces", *(["-l", query] if query else []),
                    "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
            for namespace in namespaces:
                found |= pods_selected(cluster, namespace, peer.get("podSelector") or {})
    return found


def client_pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "client:0"}]}}


def shard_pods(kubectl: Kubectl, node_id: str) -> set[str]:
    """The pods of the node's Shards, from the Shards' own status (not by label)."""
    names = {s["status"]["pod"] for s in kubectl.items("shards")
             if s["spec"]["nodeId"] == node_id and (s.get("status") or {}).get("pod")}
    return {f"{kubectl.namespace}/{name}" for name in names}


@pytest.mark.timeout(240)
def test_policy_selects_exactly_its_shards_and_admits_only_labelled_clients(
        cluster: LocalCluster, kubectl: Kubectl, operator) -> None:
    kubectl.apply(shardset("one", "node-1", CONFORMANCE_SCHEMA))
    kubectl.apply(shardset("ten", "node-10", [{"key": ["x"]}, {"key": ["y"]}]))
    wait_ready(kubectl, "one", 3)
    wait_ready(kubectl, "ten", 2)
    for name, labels in (("client-1", {CLIENT_LABEL: "node-1"}),
                         ("client-10", {CLIENT_LABEL: "node-10"}),
                         ("stranger", {"app": "ordering"})):
        assert kubectl.apply(client_pod(name, labels)).returncode == 0

    ns = kubectl.namespace
    for node_id, client in (("node-1", "client-1"), ("node-10", "client-10")):
        policy = wait_for(lambda n=node_id: kubectl.exists("networkpolicy", policy_name(n))
                          and kubectl.json("networkpolicy", policy_name(n)), 30,
                          what=f"the policy of {node_id}")
        owner = policy["metadata"]["ownerReferences"]
        assert [(o["kind"], o.get("controller")) for o in owner] == [("ShardSet", True)]
        assert owner[0]["uid"] == kubectl.json(
            "shardset", "one" if node_id == "node-1" else "ten")["metadata"]["uid"]
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        assert [r["ports"] for r in policy["spec"]["ingress"]] == [
            [{"protocol": "TCP", "port": 8080}]]
        # Exactly this ShardSet's shard pods: not the other's, not the clients.
        selected = pods_selected(cluster, ns, policy["spec"]["podSelector"])
        assert selected == shard_pods(kubectl, node_id) and len(selected) in (2, 3), selected
        # Only its own labelled client: not the other's, the stranger or any shard.
        assert admitted(cluster, policy) == {f"{ns}/{client}"}


@pytest.mark.timeout(240)
def test_client_selector_changes_drift_and_deletion(
        cluster: LocalCluster, kubectl: Kubectl, operator) -> None:
    ns = kubectl.namespace
    peers_ns = f"t-peers-{uuid.uuid4().hex[:8]}"
    cluster.create_namespace(peers_ns, {"team": "ordering"})
    try:
        others = Kubectl(cluster, peers_ns)
        for name, labels in (("scraper", {"app": "prometheus"}), ("any", {})):
            assert others.apply(client_pod(name, labels)).returncode == 0
        for name, labels in (("ordering", {"app": "ordering"}), ("web", {"app": "web"})):
            assert kubectl.apply(client_pod(name, labels)).returncode == 0

        kubectl.apply(shardset("s", "s", CONFORMANCE_SCHEMA))
        wait_ready(kubectl, "s", 3)
        name = policy_name("s")
        assert admitted(cluster, kubectl.json("networkpolicy", name)) == set()

        # A clientSelector change reaches the policy: pods of this namespace by label,
        # and pods of another namespace chosen by both selectors.
        selector = [
            {"podSelector": {"matchExpressions": [
                {"key": "app", "operator": "In", "values": ["ordering"]}]}},
            {"namespaceSelector": {"matchLabels": {"team": "ordering"}},
             "podSelector": {"matchLabels": {"app": "prometheus"}}}]
        assert kubectl.apply(shardset("s", "s", CONFORMANCE_SCHEMA,
                                      clientSelector=selector)).returncode == 0
        want = {f"{ns}/ordering", f"{peers_ns}/scraper"}
        wait_for(lambda: admitted(cluster, kubectl.json("networkpolicy", name)) == want, 30,
                 what="the new clientSelector in the policy")
        # A namespaceSelector alone admits every pod of those namespaces.
        assert kubectl.apply(shardset("s", "s", CONFORMANCE_SCHEMA, clientSelector=[
            {"namespaceSelector": {"matchLabels": {"team": "ordering"}}}])).returncode == 0
        want = {f"{peers_ns}/scraper", f"{peers_ns}/any"}
        wait_for(lambda: admitted(cluster, kubectl.json("networkpolicy", name)) == want, 30,
                 what="the namespaceSelector alone")
        good = kubectl.json("networkpolicy", name)

        # A hand edit is reverted: an added rule admitting everything, a narrower pod
        # selector (the other shards would be open) and an extra port.
        kubectl("patch", "networkpolicy", name, "--type=json", "-p",
                '[{"op":"add","path":"/spec/ingress/-","value":{}},'
                '{"op":"add","path":"/spec/podSelector/matchLabels/extra","value":"x"},'
                '{"op":"add","path":"/spec/ingress/0/ports/-","value":{"port":22}}]')
        wait_for(lambda: kubectl.json("networkpolicy", name)["spec"] == good["spec"], 30,
                 what="the hand edit reverted")
        # A stripped owner reference is restored; a deleted policy is made again.
        kubectl("patch", "networkpolicy", name, "--type=json",
                "-p", '[{"op":"remove","path":"/metadata/ownerReferences"}]')
        wait_for(lambda: kubectl.json("networkpolicy", name)["metadata"].get(
            "ownerReferences"), 30, what="the owner reference restored")
        uid = kubectl.json("networkpolicy", name)["metadata"]["uid"]
        kubectl("delete", "networkpolicy", name)
        wait_for(lambda: kubectl("get", "networkpolicy", name, "-o",
                                 "jsonpath={.metadata.uid}", check=False).stdout
                 not in ("", uid), 30, what="the deleted policy made again")

        # Deleting the ShardSet lets the garbage collector delete its policy.
        kubectl("delete", "shardset", "s", "--wait=false")
        wait_for(lambda: not kubectl.exists("networkpolicy", name), 90,
                 what="the policy garbage-collected")
    finally:
        cluster.kubectl("delete", "namespace", peers_ns, "--wait=false", check=False)


@pytest.mark.timeout(120)
def test_no_policy_writes_after_convergence(kubectl: Kubectl, operator) -> None:
    selector = [
        {"podSelector": {"matchLabels": {}, "matchExpressions": [
            {"key": "tier", "operator": "Exists"},
            {"key": "app", "operator": "NotIn", "values": ["web"]}]}},
        {"namespaceSelector": {}},
        {"namespaceSelector": {"matchLabels": {"team": "a"}}, "podSelector": {}}]
    kubectl.apply(shardset("q", "q", CONFORMANCE_SCHEMA, clientSelector=selector))
    wait_ready(kubectl, "q", 3)
    stored = kubectl.json("networkpolicy", policy_name("q"))
    owner = kubectl.json("shardset", "q")
    # The policy as the API server stores it is the one the operator renders, so a
    # pass finds nothing to patch (empty parts are left out on both sides).
    desired = netpol.network_policy(owner, "q", selector)
    assert netpol.policy_patch(stored, desired, owner["metadata"]["uid"]) == {}
    kubectl("annotate", "shardset", "q", "poke=1")  # an event, hence a pass
    time.sleep(5)
    after = kubectl.json("networkpolicy", policy_name("q"))
    assert after["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
