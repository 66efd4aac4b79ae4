"""GitOps health of a ShardSet, without a cluster: the Argo CD Lua health check
(docs/argocd/health-shardset.lua) run under real Lua interpreters, and the real kstatus
library (cluster/testtools/cmd/kstatus), both on the recorded status objects of
tests/fixtures/shardset-status/. Live objects are checked in tests/operator."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import time

import pytest

from localcluster import LocalCluster
from tests.testtools import (
    ARGOCD_HEALTH,
    LUA_INTERPRETERS,
    REPO,
    argocd_health,
    built_testtools,
    fixtures,
    kstatus,
    kstatus_live,
    lua_literal,
)

FIXTURES = fixtures()
CURRENT = FIXTURES["current"]["object"]


def test_fixtures_cover_every_outcome() -> None:
    assert {f["expect"]["argocd"] for f in FIXTURES.values()} == {
        "Healthy", "Progressing", "Degraded"}
    assert {f["expect"]["kstatus"] for f in FIXTURES.values()} >= {
        "Current", "InProgress", "Failed", "Terminating"}


@pytest.mark.parametrize("interpreter", LUA_INTERPRETERS)
@pytest.mark.parametrize("case", sorted(FIXTURES))
def test_argocd_health_check(case: str, interpreter: str) -> None:
    fixture = FIXTURES[case]
    status, message = argocd_health(fixture["object"], interpreter)
    assert status == fixture["expect"]["argocd"], message
    assert message and message != "nil"


@pytest.mark.parametrize("interpreter", LUA_INTERPRETERS)
def test_argocd_health_follows_kstatus_order(interpreter: str) -> None:
    """An unobserved generation wins over everything after it; Stalled over Reconciling
    and Ready; a Stalled condition's reason and message are shown."""
    stale = copy.deepcopy(CURRENT)
    stale["metadata"]["generation"] += 1
    stale["status"]["conditions"].append(
        {"type": "Stalled", "status": "True", "reason": "InvalidSchema", "message": "old"})
    assert argocd_health(stale, interpreter)[0] == "Progressing"
    both = copy.deepcopy(CURRENT)
    both["status"]["conditions"] = [
        {"type": "Reconciling", "status": "True", "reason": "RollingOut", "message": "m"},
        {"type": "Ready", "status": "True", "reason": "AllShardsReady", "message": ""},
        {"type": "Stalled", "status": "True", "reason": "KeyMapFull", "message": "too big"}]
    assert argocd_health(both, interpreter) == ("Degraded", "KeyMapFull: too big")
    no_observed = copy.deepcopy(CURRENT)
    del no_observed["status"]["observedGeneration"]
    assert argocd_health(no_observed, interpreter)[0] == "Progressing"


@pytest.mark.parametrize("case", sorted(FIXTURES))
def test_kstatus_result(case: str) -> None:
    fixture = FIXTURES[case]
    (result,) = kstatus([fixture["object"]])
    assert result["status"] == fixture["expect"]["kstatus"], result
    assert result["name"] == fixture["object"]["metadata"]["name"]


def test_kstatus_current_inprogress_failed() -> None:
    """The three outcomes a GitOps tool acts on, from one converged ShardSet."""
    current = copy.deepcopy(CURRENT)
    newer = copy.deepcopy(CURRENT)
    newer["metadata"]["generation"] = CURRENT["status"]["observedGeneration"] + 1
    reconciling = copy.deepcopy(CURRENT)
    reconciling["status"]["conditions"][1].update(status="True", reason="RollingOut",
                                                  message="1 of 3 shards on the new template")
    stalled = copy.deepcopy(CURRENT)
    stalled["status"]["conditions"][2].update(status="True", reason="NodeIdConflict",
                                              message="node id n is used by ShardSet other")
    results = kstatus([current, newer, reconciling, stalled])
    assert [r["status"] for r in results] == ["Current", "InProgress", "InProgress", "Failed"]
    assert results[1]["conditions"][0]["reason"] == "LatestGenerationNotObserved"
    assert results[2]["message"] == "1 of 3 shards on the new template"
    assert results[3]["conditions"] == [{"type": "Stalled", "status": "True",
                                         "reason": "NodeIdConflict",
                                         "message": "node id n is used by ShardSet other"}]
    assert results[0]["observedGeneration"] == results[0]["generation"] == 3


def test_kstatus_reads_lists_and_argocd_agrees() -> None:
    """A List on stdin gives one result per item; on every fixture where both tools can
    tell, Argo CD's health is kstatus's under its other name."""
    items = [f["object"] for f in FIXTURES.values()]
    results = kstatus([{"apiVersion": "v1", "kind": "List", "items": items}])
    assert [r["name"] for r in results] == [o["metadata"]["name"] for o in items]
    same = {"Current": "Healthy", "InProgress": "Progressing", "Failed": "Degraded",
            "Terminating": "Progressing"}
    # Where they differ, and why (docs/install.md): kstatus calls an object with no
    # status at all Current, and does not know this CRD's Degraded condition.
    differ = {"no-status-yet", "degraded-crashloop"}
    for (case, fixture), result in zip(FIXTURES.items(), results, strict=True):
        agrees = same[result["status"]] == fixture["expect"]["argocd"]
        assert agrees == (case not in differ), case


def test_lua_literal_keeps_json_semantics() -> None:
    assert lua_literal({"a": [1, "x\"y\n"], "b": None, "c": True}) == \
        '{["a"] = {1, "x\\"y\\n"}, ["c"] = true}'


def test_docs_carry_the_script_verbatim() -> None:
    """docs/install.md's argocd-cm snippet is the tested script, line for line."""
    text = (REPO / "docs" / "install.md").read_text()
    block = re.search(r"resource\.customizations\.health\.shards\.anoma\.net_ShardSet: \|\n"
                      r"(.*?)\n```", text, re.S)
    assert block, "the argocd-cm snippet is missing from docs/install.md"
    lines = [line[6:] if line.strip() else "" for line in block.group(1).splitlines()]
    assert "\n".join(lines).strip() == ARGOCD_HEALTH.read_text().strip()


def test_kstatus_live_list_and_watch(private: LocalCluster) -> None:
    """The tool on live objects: a list, then every status write seen through a watch
    (what the live ShardSet tests use), on a ShardSet whose status this test writes."""
    private.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    private.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    "crd/shardsets.shards.anoma.net")
    private.create_namespace("ks")
    body = {k: v for k, v in CURRENT.items() if k != "status"}
    body["metadata"] = {"name": "live", "namespace": "ks"}
    private.kubectl("apply", "-f", "-", input=json.dumps(body))
    resource = "shardsets.v1alpha1.shards.anoma.net"
    watcher = subprocess.Popen(
        [str(built_testtools() / "kstatus"), f"--kubeconfig={private.kubeconfig}",
         f"--resource={resource}", "-n=ks", "--watch", "--timeout=60s", "live"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[dict] = []
    try:
        # The LIST line first: the watch then starts from that list's resourceVersion,
        # so no later write can be missed.
        assert watcher.stdout is not None
        lines.append(json.loads(watcher.stdout.readline()))
        status = copy.deepcopy(CURRENT["status"])
        status["observedGeneration"] = 1
        status["conditions"][1].update(status="True", reason="RollingOut", message="1 of 3")
        status["conditions"][0].update(status="False", reason="RollingOut", message="1 of 3")
        private.kubectl("patch", "shardset", "live", "-n", "ks", "--subresource=status",
                        "--type=merge", "-p", json.dumps({"status": status}))
        status["conditions"][1].update(status="False", reason="Converged", message="")
        status["conditions"][0].update(status="True", reason="AllShardsReady", message="3 of 3")
        private.kubectl("patch", "shardset", "live", "-n", "ks", "--subresource=status",
                        "--type=merge", "-p", json.dumps({"status": status}))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(lines) < 3:
            line = watcher.stdout.readline()
            if line:
                lines.append(json.loads(line))
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
    assert [(x["event"], x["status"]) for x in lines] == [
        ("LIST", "Current"), ("MODIFIED", "InProgress"), ("MODIFIED", "Current")], lines
    assert lines[1]["message"] == "1 of 3"
    (listed,) = kstatus_live(private.kubeconfig, resource, "ks")
    assert listed["name"] == "live" and listed["status"] == "Current"
    assert listed["observedGeneration"] == listed["generation"] == 1
