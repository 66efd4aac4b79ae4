"""A shard's claim: rendering, retention and resizing decisions (pure)."""

from __future__ import annotations

import pytest

from shard_operator.volumes import (
    adoptable,
    claim_change,
    desired_claim,
    retention,
    with_claim,
)

SHARD = {"apiVersion": "shards.anoma.net/v1alpha1", "kind": "Shard",
         "metadata": {"name": "node-1-abc", "namespace": "ns", "uid": "u-1"},
         "spec": {"nodeId": "node-1", "key": ["a"]}}
TEMPLATE = {"metadata": {"labels": {"team": "x"}},
            "spec": {"storageClassName": "local-path",
                     "resources": {"requests": {"storage": "1Gi"}}}}


def test_no_template_no_claim() -> None:
    assert desired_claim(SHARD, {}) is None


def test_claim_named_after_the_shard_with_its_labels() -> None:
    claim = desired_claim(SHARD, {"volumeClaimTemplate": TEMPLATE})
    assert claim is not None
    assert claim["metadata"]["name"] == "node-1-abc"
    assert claim["metadata"]["labels"]["shards.anoma.net/shard"] == "node-1-abc"
    assert claim["metadata"]["labels"]["team"] == "x"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]  # the default
    assert claim["spec"]["storageClassName"] == "local-path"
    assert "ownerReferences" not in claim["metadata"]  # Retain: no owner, never collected


def test_delete_policy_makes_the_shard_the_owner() -> None:
    spec = {"volumeClaimTemplate": TEMPLATE,
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"}}
    claim = desired_claim(SHARD, spec)
    assert claim is not None
    (owner,) = claim["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("Shard", "u-1")
    assert retention(spec) == "Delete" and retention({}) == "Retain"


def existing(storage: str, owners: list[dict] | None = None) -> dict:
    return {"metadata": {"name": "node-1-abc", "ownerReferences": owners or [],
                         "labels": {"app.kubernetes.io/managed-by": "shard-operator",
                                    "shards.anoma.net/shard": "node-1-abc"}},
            "spec": {"resources": {"requests": {"storage": storage}}}}


@pytest.mark.parametrize(("have", "want", "patch", "problem"), [
    ("1Gi", "1Gi", {}, ""),
    ("1Gi", "1024Mi", {}, ""),                                   # same quantity
    ("1Gi", "2Gi", {"spec": {"resources": {"requests": {"storage": "2Gi"}}}}, ""),
    ("2Gi", "1Gi", {}, "cannot shrink"),
    ("500M", "1G", {"spec": {"resources": {"requests": {"storage": "1G"}}}}, ""),
])
def test_resize(have: str, want: str, patch: dict, problem: str) -> None:
    template = {"spec": {"resources": {"requests": {"storage": want}}}}
    desired = desired_claim(SHARD, {"volumeClaimTemplate": template})
    assert desired is not None
    change = claim_change(existing(have), desired, "u-1")
    assert change.patch == patch
    assert (problem in change.problem) if problem else change.problem == ""



@pytest.mark.parametrize(("have", "want", "problem"), [
    ({"storageClassName": "fast"}, {"storageClassName": "fast"}, ""),
    ({"storageClassName": "fast"}, {}, ""),  # the template leaves the class to the default
    ({"storageClassName": "fast"}, {"storageClassName": "slow"},
     "has StorageClass fast; the template asks slow, and a claim's class cannot change"),
    ({"accessModes": ["ReadWriteOnce"]}, {}, ""),  # the default mode
    ({"accessModes": ["ReadWriteOnce"]}, {"accessModes": ["ReadWriteOncePod"]},
     "has access modes ReadWriteOnce; the template asks ReadWriteOncePod"),
], ids=["same-class", "default-class", "class-changed", "default-mode", "mode-changed"])
def test_immutable_fields_are_reported_not_patched(have: dict, want: dict, problem: str
                                                   ) -> None:
    template = {"spec": {"resources": {"requests": {"storage": "1Gi"}}, **want}}
    desired = desired_claim(SHARD, {"volumeClaimTemplate": template})
    assert desired is not None
    current = existing("1Gi")
    current["spec"].update(have)
    change = claim_change(current, desired, "u-1")
    assert change.patch == {}
    assert (problem in change.problem) if problem else change.problem == ""


def test_retention_change_moves_the_owner() -> None:
    delete = desired_claim(SHARD, {"volumeClaimTemplate": TEMPLATE,
                                   "persistentVolumeClaimRetentionPolicy":
                                       {"whenDeleted": "Delete"}})
    retain = desired_claim(SHARD, {"volumeClaimTemplate": TEMPLATE})
    assert delete is not None and retain is not None
    added = claim_change(existing("1Gi"), delete, "u-1").patch
    assert added["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    other = {"uid": "someone-else", "kind": "Thing", "name": "t", "apiVersion": "v1"}
    removed = claim_change(existing("1Gi", [other, delete["metadata"]["ownerReferences"][0]]),
                           retain, "u-1").patch
    assert removed == {"metadata": {"ownerReferences": [other]}}
    assert claim_change(existing("1Gi"), retain, "u-1").patch == {}


def test_only_our_claims_are_taken_up() -> None:
    assert adoptable(existing("1Gi"), "node-1-abc")
    assert not adoptable(existing("1Gi"), "node-1-other")
    foreign = {"metadata": {"name": "node-1-abc", "labels": {}}}
    assert not adoptable(foreign, "node-1-abc")


def test_pod_mounts_the_claim_instead_of_the_empty_dir() -> None:
    spec = {"volumes": [{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]}
    mounted = with_claim(spec, "node-1-abc")
    assert mounted["volumes"] == [{"name": "tmp", "emptyDir": {}},
                                  {"name": "data",
                                   "persistentVolumeClaim": {"claimName": "node-1-abc"}}]
    assert spec["volumes"][0] == {"name": "data", "emptyDir": {}}  # not mutated


@pytest.mark.parametrize(("text", "value"), [
    ("1Gi", 1024 ** 3), ("1024Mi", 1024 ** 3), ("500M", 500 * 10 ** 6), ("1G", 10 ** 9),
    ("1.5Gi", 3 * 1024 ** 3 // 2), ("100m", 0.1), ("1e3", 1000), ("12", 12), (".5k", 500),
])
def test_quantities(text: str, value: float) -> None:
    from decimal import Decimal

    from shard_operator.quantity import parse_quantity
    assert parse_quantity(text) == Decimal(str(value))


@pytest.mark.parametrize("text", ["", "Gi", "1GB", "1 Gi", "lots", "1.2.3"])
def test_not_quantities(text: str) -> None:
    from shard_operator.quantity import parse_quantity
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity(text)
