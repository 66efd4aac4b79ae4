"""Schema edits, drift, operator restarts, deletion, and quiet after convergence."""

from __future__ import annotations

import time

import pytest

from shard_operator import api
from tests.operator.conftest import CONFORMANCE_SCHEMA, shardset, wait_for, wait_ready
from tests.operator.test_conformance import name_of


def owned_names(kubectl, kind: str) -> list[str]:
    return sorted(o["metadata"]["name"] for o in kubectl.items(kind)
                  if o["metadata"].get("labels", {}).get("app.kubernetes.io/managed-by")
                  == "shard-operator")


@pytest.mark.timeout(240)
def test_schema_edits_add_starts_remove_retains(kubectl, operator) -> None:
    kubectl.apply(shardset("s", "s", CONFORMANCE_SCHEMA))
    wait_ready(kubectl, "s", 3)
    kubectl.apply(shardset("s", "s", [*CONFORMANCE_SCHEMA, {"key": ["z"], "initialValue": 1}]))
    wait_ready(kubectl, "s", 4)
    assert kubectl.exists("pod", name_of("s", "z"))
    # Removing b from the schema keeps its shard running and registered (Retain).
    kept = [e for e in CONFORMANCE_SCHEMA if e["key"] != ["b"]]
    kubectl.apply(shardset("s", "s", [*kept, {"key": ["z"], "initialValue": 1}]))
    wait_ready(kubectl, "s", 4)
    assert kubectl.exists("shard", name_of("s", "b")) and kubectl.exists("pod", name_of("s", "b"))
    keymap = kubectl.json("configmap", "shard-key-map-s")["data"]
    assert keymap[name_of("s", "b")] == '["b"]'
    # With removedKeyPolicy Delete, the removed key's Shard goes.
    kubectl.apply(shardset("s", "s", [*kept, {"key": ["z"], "initialValue": 1}],
                           removedKeyPolicy="Delete"))
    wait_for(lambda: not kubectl.exists("shard", name_of("s", "b")), 60, what="b deleted")
    wait_ready(kubectl, "s", 3)
    assert name_of("s", "b") not in kubectl.json("configmap", "shard-key-map-s")["data"]


@pytest.mark.timeout(300)
def test_drift_is_restored(kubectl, operator) -> None:
    kubectl.apply(shardset("d", "d", CONFORMANCE_SCHEMA))
    wait_ready(kubectl, "d", 3)
    a = name_of("d", "a")
    # A deleted Pod comes back (a new one).
    uid = kubectl.json("pod", a)["metadata"]["uid"]
    kubectl("delete", "pod", a, "--wait=false")
    wait_for(lambda: kubectl("get", "pod", a, "-o", "jsonpath={.metadata.uid}",
                             check=False).stdout not in ("", uid), 30, what="pod recreated")
    # A deleted Service comes back.
    kubectl("delete", "service", a)
    wait_for(lambda: kubectl.exists("service", a), 30, what="service recreated")
    # A changed label and a stripped owner reference are restored.
    kubectl("label", "pod", a, "shards.anoma.net/shard=tampered", "--overwrite")
    kubectl("patch", "service", a, "--type=json",
            "-p", '[{"op":"remove","path":"/metadata/ownerReferences"}]')
    wait_for(lambda: kubectl.json("pod", a)["metadata"]["labels"]["shards.anoma.net/shard"]
             == a, 30, what="label restored")
    wait_for(lambda: kubectl.json("service", a)["metadata"].get("ownerReferences"), 30,
             what="owner restored")
    # A label added to the Service's selector (which would select no pod) is removed.
    kubectl("patch", "service", a, "--type=merge", "-p", '{"spec":{"selector":{"extra":"x"}}}')
    wait_for(lambda: kubectl.json("service", a)["spec"]["selector"]
             == {"shards.anoma.net/shard": a}, 30, what="service selector restored")
    # A deleted or edited key map is restored.
    kubectl("delete", "configmap", "shard-key-map-d")
    wait_for(lambda: kubectl.exists("configmap", "shard-key-map-d"), 30, what="map recreated")
    kubectl("patch", "configmap", "shard-key-map-d", "--type=merge",
            "-p", f'{{"data":{{"{a}":"[\\"hijacked\\"]","extra":"x"}}}}')
    wait_for(lambda: kubectl.json("configmap", "shard-key-map-d")["data"].get(a) == '["a"]'
             and "extra" not in kubectl.json("configmap", "shard-key-map-d")["data"], 30,
             what="map edit reverted")
    wait_ready(kubectl, "d", 3)
    assert owned_names(kubectl, "pods") == sorted(name_of("d", k) for k in "abc")


@pytest.mark.timeout(300)
def test_operator_restart_converges_without_duplicates(kubectl, operator) -> None:
    kubectl.apply(shardset("r", "r", CONFORMANCE_SCHEMA))
    wait_ready(kubectl, "r", 3)
    operator.kill()
    # Changes made while the operator is down: a new key, a deleted pod and service.
    kubectl.apply(shardset("r", "r", [*CONFORMANCE_SCHEMA, {"key": ["n"]}]))
    kubectl("delete", "pod", name_of("r", "b"), "--wait=false")
    kubectl("delete", "service", name_of("r", "c"))
    operator.start()
    wait_ready(kubectl, "r", 4)
    expected = sorted(name_of("r", k) for k in "abcn")
    assert owned_names(kubectl, "pods") == expected
    assert owned_names(kubectl, "services") == expected
    assert sorted(s["metadata"]["name"] for s in kubectl.items("shards")) == expected


@pytest.mark.timeout(240)
async def test_deleting_shardset_removes_everything(kubectl, operator) -> None:
    kubectl.apply(shardset("g", "g", CONFORMANCE_SCHEMA))
    wait_ready(kubectl, "g", 3)
    await api.astart_shard("g", ["dyn"], 1, namespace=kubectl.namespace)
    kubectl("delete", "shardset", "g", "--wait=false")

    def all_gone() -> bool:
        return not (kubectl.items("shards") or owned_names(kubectl, "pods")
                    or owned_names(kubectl, "services")
                    or kubectl.exists("configmap", "shard-key-map-g"))
    wait_for(all_gone, 90, what="everything garbage-collected")


@pytest.mark.timeout(240)
def test_no_writes_after_convergence(kubectl, operator) -> None:
    kubectl.apply(shardset("q", "q", CONFORMANCE_SCHEMA))
    wait_ready(kubectl, "q", 3)
    time.sleep(2)

    def versions() -> dict[str, str]:
        out = {}
        for kind in ("shardsets", "shards", "pods", "services", "configmaps", "networkpolicies"):
            for obj in kubectl.items(kind):
                out[f"{kind}/{obj['metadata']['name']}"] = obj["metadata"]["resourceVersion"]
        return out

    before = versions()
    time.sleep(10)
    assert versions() == before


def test_operator_writes_only_status_on_user_objects(kubectl, operator) -> None:
    kubectl.apply(shardset("w", "w", CONFORMANCE_SCHEMA))
    wait_ready(kubectl, "w", 3)
    obj = kubectl.json("shardset", "w", "--show-managed-fields")
    managers = {(m["manager"], m.get("subresource", ""))
                for m in obj["metadata"]["managedFields"]}
    assert ("shard-operator", "status") in managers
    assert not any(m == "shard-operator" and sub != "status" for m, sub in managers)
    annotations = obj["metadata"].get("annotations") or {}
    assert not any("kopf" in k for k in annotations), annotations
    assert not obj["metadata"].get("finalizers")


def test_node_id_conflict_is_refused(kubectl, operator) -> None:
    kubectl.apply(shardset("first", "same", CONFORMANCE_SCHEMA))
    wait_ready(kubectl, "first", 3)
    kubectl.apply(shardset("second", "same", [{"key": ["other"]}]))

    def refused():
        cond = next((c for c in (kubectl.json("shardset", "second").get("status") or {})
                     .get("conditions", []) if c["type"] == "Ready"), None)
        return cond if cond and cond["reason"] == "NodeIdConflict" else None
    cond = wait_for(refused, 30, what="conflict reported")
    assert "first" in cond["message"] and cond["status"] == "False"
    assert not kubectl.exists("shard", name_of("same", "other"))
    events = kubectl.items("events.events.k8s.io")
    assert any(e.get("reason") == "NodeIdConflict" and e["regarding"]["name"] == "second"
               for e in events)
    wait_ready(kubectl, "first", 3)
