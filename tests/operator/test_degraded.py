"""Failures only the operator can see: a crash-looping shard, and a pod template the API
server refuses. Each is reported in status and by an event; nothing running is disturbed
and other ShardSets are still served."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import wait_for
from tests.operator.conftest import (
    CONFORMANCE_SCHEMA,
    Kubectl,
    shardset,
    wait_ready,
)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def warning_events(kubectl: Kubectl, regarding: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in kubectl.items("events.events.k8s.io")
            if e["regarding"]["name"] == regarding and e["reason"] == reason
            and e["type"] == "Warning"]


def shard_of(kubectl: Kubectl, node_id: str, segment: str) -> dict[str, Any]:
    return next(s for s in kubectl.items("shards", f"-lshards.anoma.net/node-id={node_id}")
                if s["spec"]["key"] == [segment])


def set_container_status(kubectl: Kubectl, pod: str, state: dict[str, Any], restarts: int,
                         ready: bool) -> None:
    """Write what a kubelet would report for the pod's container (KWOK leaves it)."""
    status = {"status": {
        "containerStatuses": [{"name": "shard", "image": "shard", "imageID": "",
                               "ready": ready, "started": ready, "restartCount": restarts,
                               "state": state}],
        "conditions": [{"type": "Ready", "status": str(ready)},
                       {"type": "ContainersReady", "status": str(ready)}]}}
    kubectl("patch", "pod", pod, "--subresource=status", "--type=merge", "-p",
            json.dumps(status))


def test_crash_loop_is_degraded_and_recovers(kubectl: Kubectl, operator) -> None:
    kubectl.apply(shardset("crashy", "node-crash", CONFORMANCE_SCHEMA))
    wait_ready(kubectl, "crashy", 3)
    victim = shard_of(kubectl, "node-crash", "b")["metadata"]["name"]
    crashing = {"waiting": {"reason": "CrashLoopBackOff",
                            "message": "back-off 5m0s restarting failed container"}}
    set_container_status(kubectl, victim, crashing, restarts=7, ready=False)

    def degraded() -> dict[str, Any] | None:
        obj = kubectl.json("shardset", "crashy")
        return obj if condition(obj, "Degraded")["status"] == "True" else None

    obj = wait_for(degraded, 30, what="Degraded=True")
    cond = condition(obj, "Degraded")
    assert cond["reason"] == "CrashLoopBackOff"
    assert victim in cond["message"] and "1 shard(s) crash-looping" in cond["message"]
    assert condition(obj, "Ready")["status"] == "False"
    assert obj["status"]["readyShards"] == 2 and obj["status"]["registeredShards"] == 3
    assert obj["status"]["restarts"] == 7
    assert obj["status"]["restartingShards"] == [{"shard": victim, "restarts": 7}]
    shard = kubectl.json("shard", victim)
    assert shard["status"]["restarts"] == 7 and shard["status"]["ready"] is False
    assert condition(shard, "Ready")["reason"] == "CrashLoopBackOff"
    # A crash-looping shard stays in the key map: Ordering keeps finding it.
    assert shard["status"]["registered"] is True
    events = wait_for(lambda: warning_events(kubectl, "crashy", "CrashLoopBackOff"), 20,
                      what="a CrashLoopBackOff event")
    assert victim in events[0]["note"]

    # The container comes back: Ready again, Degraded cleared, the restart count kept.
    running = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    set_container_status(kubectl, victim, running, restarts=8, ready=True)
    obj = wait_ready(kubectl, "crashy", 3, timeout=30)
    assert condition(obj, "Degraded")["status"] == "False"
    assert obj["status"]["restarts"] == 8


def test_refused_template_is_reported_and_disturbs_nothing(kubectl: Kubectl, operator) -> None:
    refused = {"spec": {"activeDeadlineSeconds": -5}}
    kubectl.apply(shardset("good", "node-good", [{"key": ["g"]}]))
    kubectl.apply(shardset("bad", "node-bad", [{"key": ["x"]}, {"key": ["y"]}],
                           template=refused))

    def degraded(name: str) -> dict[str, Any] | None:
        obj = kubectl.json("shardset", name)
        conds = (obj.get("status") or {}).get("conditions") or []
        return obj if any(c["type"] == "Degraded" and c["status"] == "True"
                          for c in conds) else None

    bad = wait_for(lambda: degraded("bad"), 60, what="ShardSet bad Degraded")
    cond = condition(bad, "Degraded")
    assert cond["reason"] == "TemplateRefused"
    assert "activeDeadlineSeconds" in cond["message"] and "was refused" in cond["message"]
    assert condition(bad, "Ready")["status"] == "False"
    # Only a spec change can help: Stalled (kstatus: Failed), not Reconciling.
    assert condition(bad, "Stalled")["status"] == "True"
    assert condition(bad, "Stalled")["reason"] == "TemplateRefused"
    assert condition(bad, "Reconciling")["status"] == "False"
    assert bad["status"]["readyShards"] == 0 and bad["status"]["registeredShards"] == 0
    shard = kubectl.items("shards", "-lshards.anoma.net/node-id=node-bad")[0]
    assert condition(shard, "Stalled")["reason"] == "TemplateRefused"
    events = wait_for(lambda: warning_events(kubectl, "bad", "TemplateRefused"), 20,
                      what="a TemplateRefused event")
    assert "activeDeadlineSeconds" in events[0]["note"]
    # The other ShardSet in the namespace is served all the same.
    wait_ready(kubectl, "good", 1)
    assert kubectl.items("pods", "-lshards.anoma.net/node-id=node-bad") == []

    # Fixing the template converges.
    kubectl("patch", "shardset", "bad", "--type=json",
            "-p", '[{"op": "remove", "path": "/spec/template"}]')
    wait_ready(kubectl, "bad", 2)


def test_refused_template_edit_keeps_running_pods(kubectl: Kubectl, operator) -> None:
    kubectl.apply(shardset("steady", "node-steady", CONFORMANCE_SCHEMA))
    wait_ready(kubectl, "steady", 3)
    before = {p["metadata"]["name"]: p["metadata"]["uid"]
              for p in kubectl.items("pods", "-lshards.anoma.net/node-id=node-steady")}
    assert len(before) == 3

    kubectl("patch", "shardset", "steady", "--type=merge",
            "-p", json.dumps({"spec": {"template": {"spec": {"activeDeadlineSeconds": -5}}}}))
    obj = wait_for(lambda: (lambda o: o if condition(o, "Degraded")["status"] == "True"
                            else None)(kubectl.json("shardset", "steady")), 30,
                   what="Degraded after a refused template edit")
    cond = condition(obj, "Degraded")
    assert cond["reason"] == "TemplateRefused"
    assert "refused" in cond["message"] and "activeDeadlineSeconds" in cond["message"]
    assert condition(obj, "Stalled")["status"] == "True"
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    after = {p["metadata"]["name"]: p["metadata"]["uid"]
             for p in kubectl.items("pods", "-lshards.anoma.net/node-id=node-steady")}
    assert after == before, "no running pod may be deleted for a template that is refused"
    assert obj["status"]["readyShards"] == 3 and obj["status"]["registeredShards"] == 3

    # A valid template then rolls every pod.
    fixed = {"activeDeadlineSeconds": None, "terminationGracePeriodSeconds": 3}
    kubectl("patch", "shardset", "steady", "--type=merge",
            "-p", json.dumps({"spec": {"template": {"spec": fixed}}}))

    def rolled() -> bool:
        pods = kubectl.items("pods", "-lshards.anoma.net/node-id=node-steady")
        return len(pods) == 3 and all(
            p["metadata"]["uid"] not in before.values()
            and p["spec"]["terminationGracePeriodSeconds"] == 3 for p in pods)
    wait_for(rolled, 90, what="pods rolled to the fixed template")
    wait_ready(kubectl, "steady", 3)
