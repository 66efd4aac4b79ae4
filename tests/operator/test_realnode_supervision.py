"""Supervision by the real kubelet: restarts after SIGKILL and after a clean exit keep
every answered write, a container that exits at once is a real CrashLoopBackOff, and a
server whose readiness probe fails is reported not Ready."""

from __future__ import annotations

import signal
import time

import pytest

from localcluster import LocalCluster
from shard_operator.client import ReadResult, ShardClient
from tests.conftest import wait_for
from tests.operator.conftest import Kubectl, shardset, wait_ready
from tests.operator.realnode import (
    REAL_NODE_TEMPLATE,
    PodShard,
    real_node_template,
    require_real_node,
    shard_pods,
)

pytestmark = pytest.mark.timeout(400)
KEY = ["k"]


def one_shard(cluster: LocalCluster, kubectl: Kubectl, namespace: str) -> PodShard:
    require_real_node(cluster)
    kubectl.apply(shardset("sup", "sup", [{"key": KEY, "initialValue": 1}],
                           template=REAL_NODE_TEMPLATE))
    wait_ready(kubectl, "sup", 1, timeout=180)
    return PodShard(cluster, namespace, shard_pods(cluster, namespace)['["k"]'])


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "clean-exit"])
async def test_a_restarted_server_keeps_every_answered_write(
        cluster: LocalCluster, operator, kubectl: Kubectl, namespace: str, sig: int) -> None:
    shard = one_shard(cluster, kubectl, namespace)
    try:
        async with ShardClient(lambda _: shard.address) as client:
            for height in (2, 3, 5):
                await client.reserve("s", KEY, height)
                assert await client.write("s", KEY, height, {"h": height}) is True
            await client.advance_watermark("s", KEY, 6)

        status = shard.kill(sig)
        terminated = status["lastState"]["terminated"]
        assert status["restartCount"] >= 1
        assert terminated["exitCode"] == (137 if sig == signal.SIGKILL else 0), terminated

        def statuses_show_it():
            shard_obj = kubectl.json("shard", shard.pod)
            owner = kubectl.json("shardset", "sup")
            return (shard_obj["status"].get("restarts", 0) >= 1
                    and owner["status"].get("restarts", 0) >= 1)
        wait_for(statuses_show_it, 60, what="the restart in Shard and ShardSet status")

        async with ShardClient(lambda _: shard.address) as client:
            for height in (2, 3, 5):
                assert await client.read("s", KEY, height + 1) == ReadResult(True, {"h": height})
            assert await client.read("s", KEY, 2) == ReadResult(True, 1)
        assert shard.cell()["watermark"] == 6
    finally:
        shard.close()


def test_a_container_that_exits_at_once_crash_loops_and_degrades(
        cluster: LocalCluster, operator, kubectl: Kubectl, namespace: str) -> None:
    require_real_node(cluster)
    failing = real_node_template(containers=[{"name": "shard", "image": "shard-server:0.1.0",
                                              "command": ["/bin/false"]}])
    kubectl.apply(shardset("crash", "crash", [{"key": ["x"]}], template=failing))
    pod = wait_for(lambda: shard_pods(cluster, namespace).get('["x"]'), 60, what="the pod")

    def crash_looping():
        statuses = kubectl.json("pod", pod).get("status", {}).get("containerStatuses") or [{}]
        waiting = statuses[0].get("state", {}).get("waiting", {})
        return waiting.get("reason") == "CrashLoopBackOff"
    wait_for(crash_looping, 120, interval=0.5, what="a real CrashLoopBackOff")

    def degraded():
        conds = (kubectl.json("shardset", "crash").get("status") or {}).get("conditions", [])
        return next((c for c in conds if c["type"] == "Degraded" and c["status"] == "True"), None)
    condition = wait_for(degraded, 60, what="Degraded=True")
    assert "CrashLoopBackOff" in condition["reason"] + condition["message"]

    # Degraded must not flap while the shard keeps failing: through restarts and
    # back-offs, it stays True with the same transition time (a flap False -> True
    # between two looks would change it).
    restarts_before = kubectl.json("pod", pod)["status"]["containerStatuses"][0]["restartCount"]
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        now = degraded()
        assert now is not None, "Degraded flapped to False while the shard keeps failing"
        assert now["lastTransitionTime"] == condition["lastTransitionTime"], now
        time.sleep(0.5)
    restarts_after = kubectl.json("pod", pod)["status"]["containerStatuses"][0]["restartCount"]
    assert restarts_after > restarts_before  # it did restart meanwhile


def test_a_server_whose_probe_fails_is_not_ready(
        cluster: LocalCluster, operator, kubectl: Kubectl, namespace: str) -> None:
    require_real_node(cluster)
    # The server runs and answers, but its readiness probe asks a path that 404s.
    probe = {"httpGet": {"path": "/no-such-path", "port": 8080}, "periodSeconds": 2}
    template = real_node_template(containers=[{
        "name": "shard", "image": "shard-server:0.1.0", "readinessProbe": probe,
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}])
    kubectl.apply(shardset("unready", "unready", [{"key": ["u"]}], template=template))
    pod = wait_for(lambda: shard_pods(cluster, namespace).get('["u"]'), 60, what="the pod")

    def running_not_ready():
        statuses = kubectl.json("pod", pod).get("status", {}).get("containerStatuses") or [{}]
        return "running" in statuses[0].get("state", {}) and not statuses[0].get("ready")
    wait_for(running_not_ready, 120, interval=0.5, what="a running, unready container")

    def reported():
        shard = kubectl.json("shard", pod).get("status") or {}
        owner = kubectl.json("shardset", "unready").get("status") or {}
        ready = next((c for c in owner.get("conditions", []) if c["type"] == "Ready"), {})
        return (shard.get("ready") is False and shard.get("phase") == "Running"
                and owner.get("readyShards") == 0 and ready.get("status") == "False")
    wait_for(reported, 60, what="the Shard and ShardSet reporting it not Ready")
