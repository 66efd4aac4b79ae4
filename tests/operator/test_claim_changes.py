"""Changing a ShardSet's volumeClaimTemplate on existing claims (API server only: the
claims are bound by hand to PersistentVolumes that nothing provisions):
- a larger request grows each claim where its StorageClass allows expansion;
- where it does not, the API server refuses, and the status says so plainly;
- a changed class is reported, never patched; nothing running is disturbed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from localcluster import LocalCluster
from tests.conftest import wait_for
from tests.operator.conftest import Kubectl, shardset

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def classes(cluster: LocalCluster, namespace: str) -> Iterator[dict[str, str]]:
    """Two StorageClasses nothing provisions: one allows expansion, one does not."""
    names = {"expandable": f"grow-{namespace}", "fixed": f"fixed-{namespace}"}
    for kind, name in names.items():
        cluster.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name}, "provisioner": "example.com/none",
            "volumeBindingMode": "Immediate", "allowVolumeExpansion": kind == "expandable"}))
    yield names
    cluster.kubectl("delete", "storageclass", *names.values(), "--wait=false", check=False)


def durable(name: str, storage_class: str, size: str) -> dict[str, Any]:
    return shardset(name, name, [{"key": [name]}], volumeClaimTemplate={"spec": {
        "storageClassName": storage_class, "resources": {"requests": {"storage": size}}}})


def bind(cluster: LocalCluster, kubectl: Kubectl, node_id: str, storage_class: str) -> str:
    """Wait for the operator's claim of ``node_id``'s one shard and bind it to a new
    PersistentVolume (as a provisioner would); the claim's name."""
    claim = wait_for(lambda: next(iter(kubectl.items(
        "pvc", f"-lshards.anoma.net/node-id={node_id}")), None), 60,
        what=f"the claim of {node_id}")
    name = claim["metadata"]["name"]
    cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"{kubectl.namespace}-{name}"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "storageClassName": storage_class, "persistentVolumeReclaimPolicy": "Delete",
                 "hostPath": {"path": f"/nonexistent/{name}"},
                 "claimRef": {"namespace": kubectl.namespace, "name": name,
                              "uid": claim["metadata"]["uid"]}}}))
    wait_for(lambda: kubectl.json("pvc", name).get("status", {}).get("phase") == "Bound", 60,
             what=f"claim {name} Bound")
    return name


def claim_problem(kubectl: Kubectl, name: str, text: str) -> dict[str, Any] | None:
    obj = kubectl.json("shardset", name)
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == "Degraded" and cond["reason"] == "ClaimProblem" and \
                text in cond["message"]:
            return obj
    return None


def test_claims_grow_where_the_class_allows_and_say_so_where_not(
        cluster: LocalCluster, kubectl: Kubectl, operator, classes: dict[str, str]) -> None:
    kubectl.apply(durable("grow", classes["expandable"], "16Mi"))
    kubectl.apply(durable("fixed", classes["fixed"], "16Mi"))
    grow = bind(cluster, kubectl, "grow", classes["expandable"])
    fixed = bind(cluster, kubectl, "fixed", classes["fixed"])
    pods = {p["metadata"]["name"]: p["metadata"]["uid"] for p in kubectl.items("pods")}

    # A larger request: patched into the claim where its class can expand ...
    kubectl.apply(durable("grow", classes["expandable"], "32Mi"))
    wait_for(lambda: kubectl.json("pvc", grow)["spec"]["resources"]["requests"]["storage"]
             == "32Mi", 60, what=f"claim {grow} grown to 32Mi")
    assert claim_problem(kubectl, "grow", "") is None

    # ... and refused by the API server where it cannot, which the status says plainly.
    kubectl.apply(durable("fixed", classes["fixed"], "32Mi"))
    refused = wait_for(lambda: claim_problem(kubectl, "fixed", f"claim {fixed} cannot be "
                                             "changed"), 60, what="the refused resize reported")
    message = next(c["message"] for c in refused["status"]["conditions"]
                   if c["type"] == "Stalled")
    assert "resize" in message or "expan" in message, message
    assert kubectl.json("pvc", fixed)["spec"]["resources"]["requests"]["storage"] == "16Mi"

    # A smaller request and another class: reported, the claim kept as it is.
    kubectl.apply(durable("grow", classes["fixed"], "8Mi"))
    changed = wait_for(lambda: claim_problem(kubectl, "grow", "cannot shrink"), 60,
                       what="the class change and the shrink reported")
    stalled = next(c for c in changed["status"]["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and "class cannot change" in stalled["message"]
    claim = kubectl.json("pvc", grow)
    assert claim["spec"]["storageClassName"] == classes["expandable"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "32Mi"
    # Nothing running was replaced for any of it.
    assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in kubectl.items("pods")} == pods
