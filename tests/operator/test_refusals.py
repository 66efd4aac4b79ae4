"""What the operator refuses, on the real API server: a generation with an invalid
entry (nothing of it applies) and a Shard made by hand under another name than the
derived one (refused in its status, also after an operator restart)."""

from __future__ import annotations

import signal

from tests.conftest import wait_for
from tests.operator.conftest import Kubectl, ready_condition, shardset, wait_ready

GV = "shards.anoma.net/v1alpha1"


def _ready_reason(kubectl: Kubectl, name: str, reason: str):
    def check():
        obj = kubectl.json("shardset", name)
        cond = ready_condition(obj)
        return obj if cond and cond["reason"] == reason and (
            obj["status"].get("observedGeneration") == obj["metadata"]["generation"]) else None
    return wait_for(check, 60, what=f"ShardSet {name} Ready reason {reason}")


def test_invalid_generation_applies_nothing_until_fixed(kubectl: Kubectl, operator) -> None:
    kubectl.apply(shardset("inv", "inv", [{"key": ["a"]}]))
    wait_ready(kubectl, "inv", 1)
    big = {f"f{i}": "x" * 1000 for i in range(70)}  # within the CRD's bounds, over 64 KiB
    result = kubectl.apply(shardset("inv", "inv", [
        {"key": ["a"]}, {"key": ["b"]},
        {"key": ["YQ=="], "keyEncoding": "base64"},  # ["a"] again, in base64
        {"key": ["c"], "initialValue": big}]))
    assert result.returncode == 0, result.stderr  # only the operator can see these
    obj = _ready_reason(kubectl, "inv", "InvalidSchema")
    message = ready_condition(obj)["message"]
    assert "spec.schema[2]" in message and "spec.schema[3]" in message, message
    assert obj["status"]["registeredShards"] == 1
    assert [s["spec"]["key"] for s in kubectl.items("shards")] == [["a"]]  # b not started
    events = [e for e in kubectl.items("events.events.k8s.io")
              if e.get("reason") == "InvalidSchema" and e["regarding"]["name"] == "inv"]
    assert events and events[0]["type"] == "Warning"
    kubectl.apply(shardset("inv", "inv", [{"key": ["a"]}, {"key": ["b"]}]))
    wait_ready(kubectl, "inv", 2)


def test_hand_made_shard_is_refused_and_stays_refused(kubectl: Kubectl, operator) -> None:
    kubectl.apply(shardset("hand", "hand", [{"key": ["a"]}]))
    result = kubectl.apply({"apiVersion": GV, "kind": "Shard", "metadata": {"name": "mine"},
                            "spec": {"nodeId": "hand", "key": ["x"]}})
    assert result.returncode == 0, result.stderr
    wait_ready(kubectl, "hand", 1)

    def refused():
        status = kubectl.json("shard", "mine").get("status") or {}
        cond = next((c for c in status.get("conditions", []) if c["type"] == "Registered"),
                    None)
        return cond if cond and cond["reason"] == "NameNotDerived" else None
    cond = wait_for(refused, 30, what="hand-made Shard refused")
    assert cond["status"] == "False" and "hand-" in cond["message"]
    assert not kubectl.exists("pod", "mine") and not kubectl.exists("service", "mine")
    operator.kill(signal.SIGTERM)
    operator.start()
    wait_ready(kubectl, "hand", 1)
    assert refused() and not kubectl.exists("pod", "mine")
