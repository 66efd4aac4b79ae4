"""The local cluster's admission policy over KWOK's pod deletes (``kwok_delete_guard``):
KWOK removes a terminating pod by name, without a UID precondition, so a late delete
would land on the next pod of that name; only deletes of terminating pods get through."""

from __future__ import annotations

import json

from localcluster import LocalCluster
from localcluster.cluster import KWOK_USER
from shard_operator.render import DEFAULT_IMAGE
from tests.conftest import kubectl_json, wait_for


def _pod(cluster: LocalCluster, namespace: str) -> dict | None:
    result = cluster.kubectl("-n", namespace, "get", "pod", "p", "-o", "json", check=False)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)


def test_kwok_may_delete_only_a_terminating_pod(cluster: LocalCluster, namespace: str) -> None:
    cluster.kubectl("-n", namespace, "run", "p", f"--image={DEFAULT_IMAGE}",
                    "--restart=Never", "--overrides",
                    '{"spec": {"nodeSelector": {"type": "kwok"}}}')
    wait_for(lambda: (_pod(cluster, namespace) or {}).get("status", {}).get("phase")
             == "Running", what="pod p Running on a KWOK node")
    uid = kubectl_json(cluster, "-n", namespace, "get", "pod", "p")["metadata"]["uid"]

    # As KWOK would: by name, grace 0, while the pod is not being deleted.
    kwok = str(cluster._kubeconfig_path(KWOK_USER))
    refused = cluster.kubectl("--kubeconfig", kwok, "-n", namespace, "delete", "pod", "p",
                              "--grace-period=0", "--force", check=False)
    assert refused.returncode != 0
    assert "KWOK deletes only terminating pods" in refused.stderr
    assert (_pod(cluster, namespace) or {})["metadata"]["uid"] == uid

    # A graceful delete by anyone else: the pod terminates and KWOK may remove it.
    cluster.kubectl("-n", namespace, "delete", "pod", "p", "--wait=false")
    wait_for(lambda: _pod(cluster, namespace) is None, timeout=60,
             what="the terminating pod removed by KWOK")
