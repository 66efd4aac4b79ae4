"""GitOps health of live ShardSets and Shards written by the operator: every version of
the object seen through a watch is judged by the real kstatus library (Flux's health
check) and by the Argo CD Lua health check (docs/argocd/health-shardset.lua).

- converging, then Current (Healthy) once every shard is Ready and registered;
- a template rollout: InProgress on every status write until every shard runs the new
  template, then Current, and never Current in between (today's flip-flop);
- a refused template and an invalid schema: Failed (Stalled), then Current once fixed.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from localcluster import LocalCluster
from tests.conftest import wait_for
from tests.operator.conftest import Kubectl, shardset
from tests.testtools import argocd_health, kstatus

ARGOCD_OF_KSTATUS = {"Current": "Healthy", "InProgress": "Progressing", "Failed": "Degraded",
                     "Terminating": "Progressing"}
SCHEMA = [{"key": [f"k{i}"]} for i in range(6)]


class ObjectWatch:
    """``kubectl get -w`` of one object: every version of it, in order, kept in
    ``seen`` (the first is the list's)."""

    def __init__(self, cluster: LocalCluster, namespace: str, kind: str, name: str) -> None:
        self.seen: list[dict[str, Any]] = []
        self.process = subprocess.Popen(
            ["kubectl", f"--kubeconfig={cluster.kubeconfig}", "-n", namespace, "get", kind,
             name, "--watch", "--output-watch-events", "-o", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        decoder, buffer = json.JSONDecoder(), ""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            buffer += line
            while buffer.strip():
                try:
                    event, end = decoder.raw_decode(buffer.lstrip())
                except ValueError:
                    break  # an object not complete yet
                buffer = buffer.lstrip()[end:]
                self.seen.append(event["object"])

    def wait(self, check: Callable[[dict[str, Any]], bool], timeout: float, what: str,
             since: int | None = None) -> dict[str, Any]:
        """The first version seen from now on (or from index ``since``: taken before the
        change waited for, since the operator may answer it before this call) for which
        ``check`` holds."""
        start = len(self.seen) if since is None else since

        def found() -> dict[str, Any] | None:
            return next((o for o in self.seen[start:] if check(o)), None)
        return wait_for(found, timeout, interval=0.2, what=what)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.reader.join(timeout=10)


def judged(objects: list[dict[str, Any]]) -> list[str]:
    """kstatus's verdict on each object; Argo CD's Lua check must agree on each."""
    verdicts = [r["status"] for r in kstatus(objects)]
    for obj, verdict in zip(objects, verdicts, strict=True):
        health, message = argocd_health(obj)
        assert health == ARGOCD_OF_KSTATUS[verdict], (verdict, health, message, obj["status"])
    return verdicts


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    found = next((c for c in (obj.get("status") or {}).get("conditions") or []
                  if c["type"] == type_), None)
    assert found is not None, f"no {type_} condition in {obj.get('status')}"
    return found


def observed(obj: dict[str, Any]) -> bool:
    return (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]


def ready(obj: dict[str, Any]) -> bool:
    return observed(obj) and any(c["type"] == "Ready" and c["status"] == "True"
                                 for c in obj["status"].get("conditions") or [])


def stalled(obj: dict[str, Any]) -> bool:
    return observed(obj) and any(c["type"] == "Stalled" and c["status"] == "True"
                                 for c in obj["status"].get("conditions") or [])


def test_health_through_converge_and_rollout(cluster: LocalCluster, kubectl: Kubectl,
                                             operator) -> None:
    kubectl.apply(shardset("gitops", "gitops", SCHEMA))
    watch = ObjectWatch(cluster, kubectl.namespace, "shardset", "gitops")
    try:
        converged = watch.wait(ready, 90, "the ShardSet Ready")
        assert judged([converged]) == ["Current"]
        # Every status written while converging said InProgress.
        writes = [o for o in watch.seen[:watch.seen.index(converged)] if o.get("status")]
        assert set(judged(writes)) <= {"InProgress"}, [o["status"] for o in writes]

        # A template change: InProgress on every version until all shards run it.
        pods_before = {p["metadata"]["name"]: p["metadata"]["uid"]
                       for p in kubectl.items("pods", "-lshards.anoma.net/node-id=gitops")}
        assert len(pods_before) == len(SCHEMA)
        first = len(watch.seen)
        kubectl("patch", "shardset", "gitops", "--type=merge", "-p", json.dumps(
            {"spec": {"template": {"metadata": {"annotations": {"rollout": "2"}}}}}))
        done = watch.wait(lambda o: ready(o) and o["metadata"]["generation"]
                          > converged["metadata"]["generation"], 180, "the rollout done",
                          since=first)
        during = watch.seen[first:watch.seen.index(done)]
        assert len(during) >= len(SCHEMA), "a rollout of 6 shards writes status more often"
        verdicts = judged(during)
        assert set(verdicts) == {"InProgress"}, list(zip(
            verdicts, [(o["status"].get("updatedShards"), o["status"].get("readyShards"))
                       for o in during], strict=True))
        assert judged([done]) == ["Current"]
        assert done["status"]["updatedShards"] == done["status"]["readyShards"] == len(SCHEMA)
        pods_after = {p["metadata"]["name"]: p["metadata"]["uid"]
                      for p in kubectl.items("pods", "-lshards.anoma.net/node-id=gitops")}
        assert pods_after.keys() == pods_before.keys()
        assert not set(pods_after.values()) & set(pods_before.values()), "every pod replaced"
        # The Shards say the same: each Current (kstatus) once the rollout is done.
        shards = kubectl.items("shards", "-lshards.anoma.net/node-id=gitops")
        assert [r["status"] for r in kstatus(shards)] == ["Current"] * len(SCHEMA)
        # Nothing changes once converged: no later version says otherwise.
        time.sleep(2)
        assert set(judged(watch.seen[watch.seen.index(done):])) == {"Current"}
    finally:
        watch.stop()


def test_refused_template_and_invalid_schema_are_failed(cluster: LocalCluster,
                                                        kubectl: Kubectl, operator) -> None:
    kubectl.apply(shardset("stall", "stall", SCHEMA[:3]))
    watch = ObjectWatch(cluster, kubectl.namespace, "shardset", "stall")
    try:
        watch.wait(ready, 90, "the ShardSet Ready")

        # A template the API server refuses: Failed fast, running pods kept.
        mark = len(watch.seen)
        kubectl("patch", "shardset", "stall", "--type=merge", "-p", json.dumps(
            {"spec": {"template": {"spec": {"activeDeadlineSeconds": -5}}}}))
        refused = watch.wait(stalled, 60, "Stalled after a refused template", since=mark)
        assert judged([refused]) == ["Failed"]
        assert condition(refused, "Stalled")["reason"] == "TemplateRefused"
        assert "activeDeadlineSeconds" in condition(refused, "Stalled")["message"]
        assert condition(refused, "Reconciling")["status"] == "False"
        assert refused["status"]["readyShards"] == 3
        mark = len(watch.seen)
        kubectl("patch", "shardset", "stall", "--type=json",
                "-p", '[{"op": "remove", "path": "/spec/template"}]')
        fixed = watch.wait(ready, 90, "Ready again after the fix", since=mark)
        assert judged([fixed]) == ["Current"]

        # An invalid schema (one key in two encodings): Failed, naming the entries.
        mark = len(watch.seen)
        kubectl("patch", "shardset", "stall", "--type=merge", "-p", json.dumps(
            {"spec": {"schema": [*SCHEMA[:3], {"key": ["a"]},
                                 {"key": ["YQ=="], "keyEncoding": "base64"}]}}))
        invalid = watch.wait(stalled, 60, "Stalled after an invalid schema", since=mark)
        assert judged([invalid]) == ["Failed"]
        stall = condition(invalid, "Stalled")
        assert stall["reason"] == "InvalidSchema" and "spec.schema[4]" in stall["message"]
        mark = len(watch.seen)
        kubectl("patch", "shardset", "stall", "--type=merge", "-p", json.dumps(
            {"spec": {"schema": SCHEMA[:3]}}))
        again = watch.wait(ready, 90, "Ready again after the schema fix", since=mark)
        assert judged([again]) == ["Current"]
        assert again["status"]["desiredShards"] == 3
    finally:
        watch.stop()
