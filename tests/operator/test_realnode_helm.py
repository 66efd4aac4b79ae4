"""The operator from its own image, installed with the Helm chart on the real node,
converges a ShardSet with nothing but the chart's ServiceAccount.

The local cluster has no kube-proxy, so the operator pod runs with host networking and
reaches the API server on 127.0.0.1 (``realnode-values.yaml``, test-only). Its shards
run on the real node too and are read over ``kubectl port-forward``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from localcluster import LocalCluster
from shard_operator.keymap import parse
from shard_operator.keys import to_key
from tests.conftest import wait_for
from tests.deploy.conftest import CHART, free_port, helm
from tests.operator.conftest import CONFORMANCE_SCHEMA, Kubectl, shardset, wait_ready
from tests.operator.realnode import (
    REAL_NODE_TEMPLATE,
    PodShard,
    PortForward,
    require_real_node,
    shard_pods,
)

VALUES = Path(__file__).with_name("realnode-values.yaml")
RELEASE = "real"
ACCOUNT = f"{RELEASE}-shard-operator"

pytestmark = pytest.mark.timeout(420)


def chart_version() -> str:
    return str(yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])


@pytest.fixture
def release(cluster: LocalCluster, crds: None, namespace: str) -> Iterator[dict[str, int]]:
    """The chart installed in ``namespace``, watching it, on the real node."""
    require_real_node(cluster)
    server = urlsplit(json.loads(cluster.kubeconfig.read_text())["clusters"][0]
                      ["cluster"]["server"])
    assert server.hostname == "127.0.0.1", server
    ports = {"liveness": free_port(), "metrics": free_port()}
    helm("install", RELEASE, str(CHART), "-n", namespace, "-f", str(VALUES),
         "--set", f"watchNamespaces={{{namespace}}}",
         "--set", f"liveness.port={ports['liveness']}",
         "--set", f"metrics.port={ports['metrics']}",
         "--set", "extraEnv[0].name=KUBERNETES_SERVICE_HOST",
         "--set", "extraEnv[0].value=127.0.0.1",
         "--set", "extraEnv[1].name=KUBERNETES_SERVICE_PORT",
         "--set-string", f"extraEnv[1].value={server.port}",
         kubeconfig=cluster.kubeconfig)
    yield ports
    cluster.kubectl("-n", namespace, "delete", "shardsets", "--all", "--wait=true",
                    "--timeout=120s", check=False)
    helm("uninstall", RELEASE, "-n", namespace, "--wait", kubeconfig=cluster.kubeconfig,
         check=False)


def operator_pod(kubectl: Kubectl) -> dict:
    pods = kubectl.items("pod", "-l", "app.kubernetes.io/name=shard-operator")
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def metric_total(text: str, name: str) -> float:
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples if sample.name == name)


def test_operator_image_from_the_chart_converges_on_its_service_account(
        cluster: LocalCluster, release: dict[str, int], kubectl: Kubectl, namespace: str
        ) -> None:
    node = require_real_node(cluster)

    def running() -> dict | None:
        pod = operator_pod(kubectl)
        ready = [c for c in pod.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
        return pod if ready and ready[0]["status"] == "True" else None
    pod = wait_for(running, 180, interval=1, what="the operator pod Ready")
    spec = pod["spec"]
    assert spec["nodeName"] == node and spec["hostNetwork"] is True
    assert spec["serviceAccountName"] == ACCOUNT
    container = spec["containers"][0]
    assert container["image"] == f"shard-operator:{chart_version()}"
    assert container["livenessProbe"]["httpGet"]["host"] == "127.0.0.1"

    # Shards on the real node too, with the default image.
    kubectl.apply(shardset("helm", "helm", CONFORMANCE_SCHEMA, template=REAL_NODE_TEMPLATE))
    wait_ready(kubectl, "helm", 3, timeout=180)
    keymap = parse(kubectl.json("configmap", "shard-key-map-helm")["data"])
    assert set(keymap.shards) == {to_key([k])[0] for k in "abc"}

    # The pod's operator did it: its own write counter, read through port-forward, and no
    # error in its log (it ran with nothing but the chart's ServiceAccount token).
    name = pod["metadata"]["name"]
    metrics = PortForward(cluster, namespace, name, remote=release["metrics"])
    try:
        status, text = metrics.request("GET", "/metrics")
    finally:
        metrics.close()
    assert status == 200, text
    assert metric_total(text, "shard_operator_api_writes_total") >= 3 * 3  # Shard+Pod+Service
    # `helm test`: the chart's own test pod (from the operator image, on the real node
    # with host networking like the operator) reads the operator's metrics.
    tested = helm("test", RELEASE, "-n", namespace, "--logs", "--timeout", "120s",
                  kubeconfig=cluster.kubeconfig, check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "Phase:          Succeeded" in tested.stdout, tested.stdout
    assert f"ok: http://127.0.0.1:{release['metrics']}/metrics" in tested.stdout, tested.stdout

    logs = kubectl("logs", name).stdout
    assert "Forbidden" not in logs and "Traceback" not in logs, logs[-4000:]
    assert f"system:serviceaccount:{namespace}:{ACCOUNT}" not in logs  # no RBAC refusal

    # The shards it made answer: a holds 5, c holds 15.
    pods = shard_pods(cluster, namespace)
    for key, value in (("a", 5), ("c", 15)):
        shard = PodShard(cluster, namespace, pods[f'["{key}"]'])
        try:
            assert shard.pod_json()["spec"]["nodeName"] == node
            status, body = shard.post("/v1/read", {"key": [key], "height": 1,
                                                   "timeoutSeconds": 10})
            assert (status, body) == (200, {"result": "ok", "value": value}), key
        finally:
            shard.close()
