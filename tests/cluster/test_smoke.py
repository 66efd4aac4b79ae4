"""Smoke tests of the local control plane itself: scheduling on KWOK nodes, garbage
collection, RBAC, and clients surviving an apiserver restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localcluster import LocalCluster
from localcluster.node import NODE_LABEL, TAINT_KEY
from shard_operator.kube import Kube, load_config
from tests.conftest import kubectl_json, wait_for
from tests.operator.realnode import require_real_node


def test_version_is_pinned_release(cluster: LocalCluster) -> None:
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert version["gitVersion"].startswith("v1.33.")
    assert version["major"] == "1" and version["minor"] == "33"


def test_two_ready_kwok_nodes(cluster: LocalCluster) -> None:
    nodes = kubectl_json(cluster, "get", "nodes")["items"]
    ready = [n["metadata"]["name"] for n in nodes
             if any(c["type"] == "Ready" and c["status"] == "True"
                    for c in n["status"]["conditions"])]
    assert len(ready) >= 2


def test_every_component_healthy(cluster: LocalCluster) -> None:
    report = {c.name: c for c in cluster.health()}
    control_plane = {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                     "kwok"}
    real_node = ({"containerd", "kubelet", "local-path-provisioner"}
                 if cluster.real_node.get("enabled") else set())
    assert set(report) == control_plane | real_node
    assert all(c.running and c.healthy for c in report.values()), report


def test_the_real_node_is_ready_tainted_and_runs_containerd(cluster: LocalCluster) -> None:
    name = require_real_node(cluster)
    node = kubectl_json(cluster, "get", "node", name)
    assert {"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"} in node["spec"]["taints"]
    assert node["metadata"]["labels"][NODE_LABEL] == "true"
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    assert any(c["type"] == "Ready" and c["status"] == "True"
               for c in node["status"]["conditions"])
    # the apiserver reaches the kubelet by the node name, which resolves to loopback
    assert {"type": "Hostname", "address": name} in node["status"]["addresses"]


def test_deployment_pods_run_on_kwok_nodes(cluster: LocalCluster, namespace: str) -> None:
    cluster.kubectl("-n", namespace, "create", "deployment", "web", "--image=nginx",
                    "--replicas=3")

    def running_pods():
        pods = kubectl_json(cluster, "-n", namespace, "get", "pods")["items"]
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        return running if len(running) == 3 else None

    pods = wait_for(running_pods)
    assert {p["spec"]["nodeName"] for p in pods} <= {"kwok-node-0", "kwok-node-1"}


def test_deleting_owner_garbage_collects_dependents(cluster: LocalCluster, namespace: str
                                                    ) -> None:
    cluster.kubectl("-n", namespace, "create", "configmap", "owner")
    owner = kubectl_json(cluster, "-n", namespace, "get", "configmap", "owner")
    dependent = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "dependent", "namespace": namespace, "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
            "uid": owner["metadata"]["uid"]}]},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(dependent))
    cluster.kubectl("-n", namespace, "delete", "configmap", "owner")

    def gone():
        result = cluster.kubectl("-n", namespace, "get", "configmap", "dependent", check=False)
        return result.returncode != 0 and "NotFound" in result.stderr

    wait_for(gone, timeout=60)


def test_service_account_without_grants_is_forbidden(cluster: LocalCluster, namespace: str
                                                     ) -> None:
    cluster.kubectl("-n", namespace, "create", "serviceaccount", "nobody")
    token = cluster.kubectl("-n", namespace, "create", "token", "nobody").stdout.strip()
    assert token.count(".") == 2  # a JWT
    result = cluster.kubectl("--token", token, "--user=", "-n", namespace, "get", "pods",
                             check=False)
    assert result.returncode != 0
    assert "Forbidden" in result.stderr and f"system:serviceaccount:{namespace}:nobody" in (
        result.stderr)


@pytest.mark.timeout(180)
async def test_clients_recover_after_apiserver_restart(cluster: LocalCluster, namespace: str
                                                       ) -> None:
    kube = Kube(await load_config(pool_size=4, kubeconfig=str(cluster.kubeconfig)))

    def config_map(name: str) -> dict:
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace}}
    try:
        await kube.create(config_map("before"))
        cluster.restart_apiserver()
        # The same client (and its connection pool) works after the restart.
        await kube.create(config_map("after"))
        names = {cm["metadata"]["name"] for cm in
                 (await kube.list("ConfigMap", namespace))["items"]}
        assert {"before", "after"} <= names
        # A new watch sees objects created after the restart.
        seen = set()
        async for _, obj in kube.watch("ConfigMap", namespace, timeout_seconds=10):
            seen.add(obj["metadata"]["name"])
            if {"before", "after"} <= seen:
                break
        assert {"before", "after"} <= seen
    finally:
        await kube.close()


def test_local_path_storage_is_a_real_directory_on_the_real_node(
        cluster: LocalCluster, namespace: str) -> None:
    """A claim of the default class binds to a directory under .cluster/node/volumes that
    a pod on the real node writes; under reclaimPolicy Delete the directory goes with it."""
    from localcluster import storage
    from tests.operator.realnode import REAL_NODE_TEMPLATE

    require_real_node(cluster)
    classes = kubectl_json(cluster, "get", "storageclass")["items"]
    (local,) = [c for c in classes if c["metadata"]["name"] == storage.STORAGE_CLASS]
    assert local["metadata"]["annotations"][
        "storageclass.kubernetes.io/is-default-class"] == "true"
    assert local["allowVolumeExpansion"] is False
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": {"name": "data", "namespace": namespace},
             "spec": {"accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": "10Mi"}}}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "writer",
                                                           "namespace": namespace},
           "spec": {**REAL_NODE_TEMPLATE["spec"],
                    "serviceAccountName": "writer", "automountServiceAccountToken": False,
                    "securityContext": {"runAsUser": 65532, "runAsGroup": 65532},
                    "containers": [{"name": "w", "image": "shard-server:0.1.0",
                                    "imagePullPolicy": "Never",
                                    "command": ["/bin/sh", "-c",
                                                "echo written > /data/proof; sleep 600"],
                                    "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
                    "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
                    "terminationGracePeriodSeconds": 1}}
    # Its own account: the default one may come late after the apiserver restart above.
    account = {"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "writer", "namespace": namespace}}
    applied = cluster.kubectl("apply", "-f", "-", check=False, input=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [account, claim, pod]}))
    assert applied.returncode == 0, applied.stderr

    def bound_and_written() -> Path | None:
        got = kubectl_json(cluster, "-n", namespace, "get", "pvc", "data")
        if got["status"].get("phase") != "Bound":
            return None
        volume = kubectl_json(cluster, "get", "pv", got["spec"]["volumeName"])
        path = Path(volume["spec"]["hostPath"]["path"])
        proof = path / "proof"
        return path if proof.is_file() and proof.read_text() == "written\n" else None
    path = wait_for(bound_and_written, 90, interval=0.5, what="claim bound and written")
    assert storage.volumes_dir(cluster.directory) in path.parents

    cluster.kubectl("-n", namespace, "delete", "pod", "writer", "--wait=true")
    cluster.kubectl("-n", namespace, "delete", "pvc", "data", "--wait=true")
    wait_for(lambda: not path.exists(), 90, interval=0.5, what="volume directory removed")
