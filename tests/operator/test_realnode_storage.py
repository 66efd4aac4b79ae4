"""A shard keeps its state when its pod is replaced: a claim per shard (local-path, real
directories on the real node), rollouts within maxUnavailable, retention, canaries and
the disruption budget. Shards are read and written over ``kubectl port-forward``."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from localcluster import LocalCluster
from tests.conftest import wait_for
from tests.operator.conftest import Kubectl, ready_condition, shardset, wait_ready
from tests.operator.realnode import REAL_NODE_TEMPLATE, PodShard, require_real_node, shard_pods

pytestmark = pytest.mark.timeout(600)

KEYS = ("a", "b", "c", "d")
SCHEMA = [{"key": [k]} for k in KEYS]
CLAIM = {"spec": {"resources": {"requests": {"storage": "16Mi"}}}}  # the default class


def durable(name: str, **spec: Any) -> dict[str, Any]:
    return shardset(name, name, SCHEMA,
                    **{"template": REAL_NODE_TEMPLATE, "volumeClaimTemplate": CLAIM, **spec})


def with_annotation(value: str) -> dict[str, Any]:
    """The real-node template with a pod annotation: a template change."""
    return {"metadata": {"annotations": {"example.com/rev": value}},
            "spec": REAL_NODE_TEMPLATE["spec"]}


def shard(cluster: LocalCluster, namespace: str, key: str) -> PodShard:
    return PodShard(cluster, namespace, shard_pods(cluster, namespace)[f'["{key}"]'])


def write_history(cluster: LocalCluster, namespace: str, key: str) -> None:
    """Writes at heights 3 and 7 and the watermark at 8, each answered."""
    s = shard(cluster, namespace, key)
    try:
        for path, body in (("/v1/reserve", {"height": 3}), ("/v1/reserve", {"height": 7}),
                           ("/v1/write", {"height": 3, "value": f"{key}@3"}),
                           ("/v1/write", {"height": 7, "value": f"{key}@7"}),
                           ("/v1/advance-watermark", {"height": 8})):
            status, answer = s.post(path, {"key": [key], **body})
            assert status == 200, (path, answer)
            if path == "/v1/write":
                assert answer == {"applied": True}
    finally:
        s.close()


def assert_history(cluster: LocalCluster, namespace: str, key: str) -> None:
    s = shard(cluster, namespace, key)
    try:
        for height, value in ((4, f"{key}@3"), (8, f"{key}@7")):
            status, answer = s.post("/v1/read", {"key": [key], "height": height,
                                                 "timeoutSeconds": 10})
            assert (status, answer) == (200, {"result": "ok", "value": value}), (key, height)
    finally:
        s.close()


def claims(kubectl: Kubectl) -> dict[str, dict[str, Any]]:
    return {c["metadata"]["name"]: c for c in kubectl.items("pvc")}


class Unavailability:
    """The most shards unavailable at once, from a watch of their pods (kubectl
    ``--watch``, every event): a shard is available while its pod is Ready and not being
    deleted."""

    def __init__(self, cluster: LocalCluster, namespace: str, node_id: str, desired: int
                 ) -> None:
        self.desired, self.ready, self.worst, self.events = desired, set[str](), 0, 0
        template = ('{.type} {.object.metadata.name} {.object.metadata.deletionTimestamp} '
                    '{.object.status.conditions[?(@.type=="Ready")].status}{"\\n"}')
        self.proc = subprocess.Popen(
            ["kubectl", f"--kubeconfig={cluster.kubeconfig}", "-n", namespace, "get", "pods",
             "-l", f"shards.anoma.net/node-id={node_id}", "--watch", "--output-watch-events",
             "-o", f"jsonpath={template}"], stdout=subprocess.PIPE, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = line.split()
            if len(parts) < 2:
                continue
            kind, name = parts[0], parts[1]
            rest = parts[2:]
            deleting = any(p[:1].isdigit() for p in rest)
            ready = "True" in rest and not deleting and kind != "DELETED"
            (self.ready.add if ready else self.ready.discard)(name)
            self.events += 1
            if self.events > self.desired:  # past the initial listing
                self.worst = max(self.worst, self.desired - len(self.ready))

    def stop(self) -> int:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.thread.join(timeout=10)
        return self.worst


@pytest.fixture
def durable_set(cluster: LocalCluster, operator, kubectl: Kubectl, namespace: str
                ) -> Iterator[str]:
    require_real_node(cluster)
    kubectl.apply(durable("dur"))
    wait_ready(kubectl, "dur", len(KEYS), timeout=240)
    for key in KEYS:
        write_history(cluster, namespace, key)
    yield "dur"


def test_state_survives_a_rollout_within_max_unavailable_and_a_pod_deletion(
        cluster: LocalCluster, kubectl: Kubectl, namespace: str, durable_set: str) -> None:
    made = claims(kubectl)
    assert len(made) == len(KEYS) and all(
        c["status"]["phase"] == "Bound" for c in made.values())
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in kubectl.items("pod")}
    status = kubectl.json("shardset", durable_set)["status"]
    assert status["storage"] == "a PersistentVolumeClaim per shard"

    watch = Unavailability(cluster, namespace, durable_set, len(KEYS))
    time.sleep(1)
    kubectl.apply(durable(durable_set, template=with_annotation("2")))

    def rolled() -> dict | None:
        obj = kubectl.json("shardset", durable_set)
        cond, st = ready_condition(obj), obj.get("status") or {}
        pods = kubectl.items("pod")
        replaced = all(before.get(p["metadata"]["name"]) != p["metadata"]["uid"] for p in pods)
        done = (cond and cond["status"] == "True" and st.get("updatedShards") == len(KEYS)
                and st.get("observedGeneration") == obj["metadata"]["generation"])
        return obj if done and replaced and len(pods) == len(KEYS) else None
    wait_for(rolled, 300, interval=1, what="the rollout done")
    worst = watch.stop()
    assert watch.events > 2 * len(KEYS), watch.events  # the watch saw the rollout
    assert worst <= 1, f"{worst} shards were unavailable at once with maxUnavailable 1"
    assert claims(kubectl).keys() == made.keys()
    assert {c["metadata"]["uid"] for c in claims(kubectl).values()} == {
        c["metadata"]["uid"] for c in made.values()}  # the same claims, taken up again
    for key in KEYS:
        assert_history(cluster, namespace, key)

    # A deleted pod comes back with its state.
    victim = shard_pods(cluster, namespace)['["b"]']
    kubectl("delete", "pod", victim, "--wait=true")
    wait_ready(kubectl, durable_set, len(KEYS), timeout=180)
    wait_for(lambda: any(p["metadata"]["name"] == victim and (ready_condition(p) or {}).get(
        "status") == "True" for p in kubectl.items("pod")), 120, what="b's pod back")
    assert_history(cluster, namespace, "b")


def test_retain_keeps_the_claims_and_a_recreated_shardset_gets_its_state_back(
        cluster: LocalCluster, kubectl: Kubectl, namespace: str, durable_set: str) -> None:
    made = claims(kubectl)
    kubectl("delete", "shardset", durable_set, "--wait=true", "--timeout=120s")
    wait_for(lambda: not kubectl.items("pod"), 120, what="the pods gone")
    assert claims(kubectl).keys() == made.keys()  # Retain (the default)
    kubectl.apply(durable(durable_set))
    wait_ready(kubectl, durable_set, len(KEYS), timeout=240)
    assert {c["metadata"]["uid"] for c in claims(kubectl).values()} == {
        c["metadata"]["uid"] for c in made.values()}
    for key in KEYS:
        assert_history(cluster, namespace, key)


def test_delete_policy_lets_the_claims_go_with_their_shards(
        cluster: LocalCluster, operator, kubectl: Kubectl, namespace: str) -> None:
    require_real_node(cluster)
    body = durable("gone", persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete"})
    kubectl.apply(body)
    wait_ready(kubectl, "gone", len(KEYS), timeout=240)
    owned = claims(kubectl)
    assert len(owned) == len(KEYS)
    for claim in owned.values():
        (owner,) = claim["metadata"]["ownerReferences"]
        assert owner["kind"] == "Shard" and owner["name"] == claim["metadata"]["name"]
    kubectl("delete", "shardset", "gone", "--wait=true", "--timeout=120s")
    wait_for(lambda: not claims(kubectl), 180, interval=1, what="the claims collected")


def test_partition_and_on_delete(cluster: LocalCluster, kubectl: Kubectl, namespace: str,
                                 durable_set: str) -> None:
    names = sorted(shard_pods(cluster, namespace).values())
    partition = names[2]  # only the last two names are updated
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in kubectl.items("pod")}
    kubectl.apply(durable(durable_set, template=with_annotation("canary"), updateStrategy={
        "type": "RollingUpdate", "rollingUpdate": {"partition": partition}}))

    def canaried() -> dict | None:
        obj = kubectl.json("shardset", durable_set)
        st = obj.get("status") or {}
        return obj if (st.get("observedGeneration") == obj["metadata"]["generation"]
                       and st.get("updatedShards") == 2
                       and (ready_condition(obj) or {}).get("status") == "True") else None
    wait_for(canaried, 240, interval=1, what="the canary rolled out")
    after = {p["metadata"]["name"]: p["metadata"]["uid"] for p in kubectl.items("pod")}
    assert [n for n in names if after[n] != before[n]] == names[2:]

    # OnDelete: nothing is replaced until a pod is deleted by hand.
    kubectl.apply(durable(durable_set, template=with_annotation("ondelete"),
                          updateStrategy={"type": "OnDelete"}))
    time.sleep(8)
    assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in kubectl.items("pod")} == after
    kubectl("delete", "pod", names[0], "--wait=true")

    def recreated_on_the_new_template() -> bool:
        pod = next((p for p in kubectl.items("pod") if p["metadata"]["name"] == names[0]), None)
        return bool(pod and pod["metadata"].get("annotations", {}).get(
            "example.com/rev") == "ondelete" and (ready_condition(pod) or {}).get(
            "status") == "True")
    wait_for(recreated_on_the_new_template, 180, interval=1, what="a's pod on the new template")
    assert kubectl.json("shardset", durable_set)["status"]["updatedShards"] == 1
    for key in KEYS:
        assert_history(cluster, namespace, key)


def evict(cluster: LocalCluster, namespace: str, pod: str) -> subprocess.CompletedProcess[str]:
    body = {"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": pod, "namespace": namespace}}
    return cluster.kubectl("create", "--raw",
                           f"/api/v1/namespaces/{namespace}/pods/{pod}/eviction",
                           "-f", "-", input=json.dumps(body), check=False)


def test_the_budget_selects_the_shards_and_a_drain_respects_it(
        cluster: LocalCluster, kubectl: Kubectl, namespace: str, durable_set: str) -> None:
    (budget,) = kubectl.items("pdb")
    assert budget["metadata"]["name"] == f"shard-budget-{durable_set}"
    assert budget["spec"]["minAvailable"] == len(KEYS) - 1  # maxUnavailable 1
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    selector = ",".join(f"{k}={v}" for k, v in budget["spec"]["selector"]["matchLabels"].items())
    selected = sorted(p["metadata"]["name"] for p in kubectl.items("pod", "-l", selector))
    assert selected == sorted(shard_pods(cluster, namespace).values())
    wait_for(lambda: kubectl.json("pdb", budget["metadata"]["name"]).get("status", {}).get(
        "disruptionsAllowed") == 1, 60, what="the budget observed")

    # Drain the real node by the eviction API: one shard at a time.
    first, second = selected[:2]
    assert evict(cluster, namespace, first).returncode == 0
    refused = evict(cluster, namespace, second)
    assert refused.returncode != 0 and "disruption budget" in refused.stderr, refused.stderr
    wait_ready(kubectl, durable_set, len(KEYS), timeout=180)
    wait_for(lambda: kubectl.json("pdb", budget["metadata"]["name"])["status"].get(
        "disruptionsAllowed") == 1, 120, interval=1, what="the first shard back")
    assert evict(cluster, namespace, second).returncode == 0
    wait_ready(kubectl, durable_set, len(KEYS), timeout=180)
    for key in KEYS:
        assert_history(cluster, namespace, key)


def test_bad_claim_templates(cluster: LocalCluster, kubectl: Kubectl, namespace: str,
                             durable_set: str) -> None:
    running = {p["metadata"]["name"]: p["metadata"]["uid"] for p in kubectl.items("pod")}
    # No size: the API server refuses it, naming the field.
    no_size = durable(durable_set)
    no_size["spec"]["volumeClaimTemplate"] = {"spec": {"resources": {
        "limits": {"storage": "1Gi"}}}}
    refused = kubectl.apply(no_size)
    assert refused.returncode != 0, refused.stdout
    assert "spec.volumeClaimTemplate.spec.resources.requests" in refused.stderr, refused.stderr
    no_storage = durable(durable_set)
    no_storage["spec"]["volumeClaimTemplate"] = {"spec": {"resources": {
        "requests": {"cpu": "1"}}}}
    refused = kubectl.apply(no_storage)
    assert refused.returncode != 0, refused.stdout
    assert "spec.volumeClaimTemplate.spec.resources.requests.storage" in refused.stderr
    # An unknown StorageClass: the generation is not applied, nothing running is touched.
    unknown = durable(durable_set, template=with_annotation("unknown-class"))
    unknown["spec"]["volumeClaimTemplate"] = {"spec": {
        "storageClassName": "no-such-class", "resources": {"requests": {"storage": "16Mi"}}}}
    assert kubectl.apply(unknown).returncode == 0

    def reported() -> dict | None:
        obj = kubectl.json("shardset", durable_set)
        cond = ready_condition(obj) or {}
        return obj if cond.get("reason") == "InvalidSchema" and "no-such-class" in cond.get(
            "message", "") else None
    wait_for(reported, 60, what="the unknown StorageClass reported")
    time.sleep(5)
    assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in kubectl.items("pod")} == running
    for key in KEYS:
        assert_history(cluster, namespace, key)


def test_claims_that_stay_pending_are_reported(cluster: LocalCluster, operator,
                                               kubectl: Kubectl, namespace: str) -> None:
    """A StorageClass that exists but never provisions: the shards say ClaimPending."""
    require_real_node(cluster)
    klass = f"never-{namespace}"
    cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": klass}, "provisioner": "example.com/never",
        "volumeBindingMode": "Immediate"}))
    try:
        body = shardset("pend", "pend", [{"key": ["p"]}], template=REAL_NODE_TEMPLATE,
                        volumeClaimTemplate={"spec": {"storageClassName": klass, "resources": {
                            "requests": {"storage": "16Mi"}}}})
        kubectl.apply(body)

        def pending() -> dict | None:
            items = kubectl.items("shard")
            if not items:
                return None
            st = items[0].get("status") or {}
            cond = next((c for c in st.get("conditions", []) if c["type"] == "Ready"), {})
            return st if cond.get("reason") == "ClaimPending" else None
        status = wait_for(pending, 90, interval=1, what="the shard reported ClaimPending")
        assert status["claimPhase"] == "Pending"
        assert "Traceback" not in operator.output()
    finally:
        kubectl("delete", "shardset", "pend", "--wait=true", "--timeout=60s", check=False)
        cluster.kubectl("delete", "storageclass", klass, check=False)
