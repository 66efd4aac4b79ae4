"""High availability by a ``coordination.k8s.io/v1`` Lease, with operator processes on a
private control plane (controller-runtime's timings: lease 15 s, renew deadline 10 s,
retry 2 s):

- two replicas: exactly one holds the Lease and acts, the other stands by;
- SIGKILL the leader while 100 keys converge: the other takes over and converges,
  nothing lost or duplicated (takeover and convergence times printed);
- SIGTERM: the leader releases the Lease and the other takes over at its next retry;
- split brain: SIGSTOP the leader, let the other take over, change the ShardSet, SIGCONT
  the old leader: its own write counters do not move, and it exits with status 3;
- the chart cannot render several replicas without election.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from localcluster import LocalCluster
from shard_operator.leader import EXIT_LOST_LEADERSHIP
from tests.conftest import wait_for
from tests.deploy.conftest import CHART, REPO, Operator, helm
from tests.operator.conftest import Kubectl, shardset, wait_ready
from tests.reliability.invariants import converge, violations

LEASE = "shard-operator-leader"
LEASE_DURATION = 15
RECONCILES = "shard_operator_reconciles_total"
READS = {"get", "list", "watch"}


def scrape(operator: Operator) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=2) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def writes(samples: dict) -> float:
    """Every write this process made: its write counter plus its non-read requests."""
    total = 0.0
    for (name, labels), value in samples.items():
        verb = dict(labels).get("verb", "")
        if name == "shard_operator_api_writes_total":
            total += value
        elif name == "shard_operator_api_requests_total" and verb not in READS:
            total += value
    return total


def leading(operator: Operator) -> bool:
    try:
        return operator.metric("shard_operator_leader") == 1
    except OSError:
        return False


def holder(cluster: LocalCluster, namespace: str) -> str:
    lease = cluster.kubectl("get", "lease", LEASE, "-n", namespace, "-o", "json", check=False)
    if lease.returncode != 0:
        return ""
    return json.loads(lease.stdout)["spec"].get("holderIdentity") or ""


def identity(operator: Operator) -> str:
    for line in operator.output().splitlines():
        if "waiting for Lease" in line:
            return json.loads(line)["message"].split(" as ")[1].split(" ")[0]
    return ""


def start_pair(cluster: LocalCluster, namespace: str, tmp_path: Path, tag: str
               ) -> tuple[Operator, Operator]:
    """Two replicas; returns (leader, standby) once one leads."""
    first = Operator(cluster.kubeconfig, tmp_path / f"{tag}-1.log", "-n", namespace,
                     "--log-format", "json")
    wait_for(lambda: leading(first), 60, what="the first replica leads")
    second = Operator(cluster.kubeconfig, tmp_path / f"{tag}-2.log", "-n", namespace,
                      "--log-format", "json")
    wait_for(lambda: "standing by" in second.output(), 60, what="the second stands by")
    return first, second


def clean_log(operator: Operator) -> None:
    lines = [json.loads(line) for line in operator.output().splitlines()
             if line.startswith("{")]
    errors = [line for line in lines if line["level"] == "ERROR"
              and "will retry" not in line["message"]
              and "lost leadership" not in line["message"]]
    assert not errors, errors[:5]
    assert "Traceback" not in operator.output()


@pytest.fixture(scope="module")
def crds(private: LocalCluster) -> LocalCluster:
    private.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    private.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    "crd/shardsets.shards.anoma.net", "crd/shards.shards.anoma.net")
    return private


@pytest.mark.timeout(300)
def test_one_lease_holder_and_sigkill_takeover_under_load(crds: LocalCluster,
                                                          tmp_path: Path) -> None:
    private = crds
    private.create_namespace("ha")
    kubectl = Kubectl(private, "ha")
    active, standby = start_pair(private, "ha", tmp_path, "kill")
    try:
        # Exactly one holder: the Lease names the leader, which alone acts.
        assert holder(private, "ha") == identity(active) != ""
        assert kubectl.apply(shardset("first", "first", [{"key": ["a"]}, {"key": ["b"]}])
                             ).returncode == 0
        wait_ready(kubectl, "first", 2)
        time.sleep(2)  # any stray write of the standby would show by now
        assert leading(active) and not leading(standby)
        assert active.metric(RECONCILES, kind="ShardSet") > 0
        assert standby.metric(RECONCILES, kind="ShardSet") == 0
        assert writes(scrape(standby)) == 0
        assert active.healthz() == 200 and standby.healthz() == 200  # a standby is alive
        assert len(json.loads(private.kubectl("get", "lease", "-n", "ha", "-o", "json")
                              .stdout)["items"]) == 1

        # SIGKILL the leader while 100 keys converge.
        keys = [[f"k{i}"] for i in range(100)]
        assert kubectl.apply(shardset("load", "load", [{"key": k} for k in keys])
                             ).returncode == 0
        wait_for(lambda: len(kubectl.items("pods", "-l", "shards.anoma.net/node-id=load"))
                 >= 20, 120, interval=0.1, what="the first 20 pods")
        active.stop(signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: leading(standby), LEASE_DURATION + 30, interval=0.1,
                 what="the standby leads")
        takeover = time.monotonic() - killed
        assert holder(private, "ha") == identity(standby)
        converge(kubectl, "load", "load", keys, timeout=180)
        converged = time.monotonic() - killed
        assert violations(kubectl, "first", "first", [["a"], ["b"]]) == []
        print(f"SIGKILL takeover: {takeover:.1f} s, converged 100 keys {converged:.1f} s "
              f"after the kill (lease {LEASE_DURATION} s)")
        assert takeover < LEASE_DURATION + 2 * 2 + 5
    finally:
        active.stop(signal.SIGKILL)
        standby.stop()
    clean_log(standby)


@pytest.mark.timeout(180)
def test_sigterm_releases_the_lease(crds: LocalCluster, tmp_path: Path) -> None:
    private = crds
    private.create_namespace("ha-term")
    kubectl = Kubectl(private, "ha-term")
    active, standby = start_pair(private, "ha-term", tmp_path, "term")
    try:
        active.process.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        wait_for(lambda: leading(standby), LEASE_DURATION, interval=0.05,
                 what="the standby leads")
        handover = time.monotonic() - stopped
        assert active.process.wait(timeout=30) == 0
        assert "released Lease" in active.output()
        assert kubectl.apply(shardset("t", "t", [{"key": ["a"]}])).returncode == 0
        wait_ready(kubectl, "t", 1)
        print(f"SIGTERM handover: {handover:.1f} s (retry period 2 s)")
        assert handover < 6  # one retry period and the graceful stop, not the lease
    finally:
        active.stop(signal.SIGKILL)
        standby.stop()
    clean_log(active)
    clean_log(standby)


@pytest.mark.timeout(300)
def test_split_brain_a_resumed_leader_writes_nothing_and_exits(crds: LocalCluster,
                                                               tmp_path: Path) -> None:
    private = crds
    private.create_namespace("ha-split")
    kubectl = Kubectl(private, "ha-split")
    old, new = start_pair(private, "ha-split", tmp_path, "split")
    try:
        keys = [["a"], ["b"], ["c"]]
        assert kubectl.apply(shardset("s", "s", [{"key": k} for k in keys])).returncode == 0
        converge(kubectl, "s", "s", keys, timeout=120)
        time.sleep(2)
        before = writes(scrape(old))
        assert before > 0 and writes(scrape(old)) == before  # quiet once converged

        old.process.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        wait_for(lambda: leading(new), LEASE_DURATION + 30, interval=0.1,
                 what="the other replica leads")
        takeover = time.monotonic() - stopped
        assert holder(private, "ha-split") == identity(new)

        # A change only the new leader should act on, then the old one resumes.
        keys += [["d"], ["e"]]
        assert kubectl.apply(shardset("s", "s", [{"key": k} for k in keys])).returncode == 0
        time.sleep(1)  # the old leader's watch has the change waiting for it
        old.process.send_signal(signal.SIGCONT)
        readings = []
        deadline = time.monotonic() + 30
        while old.process.poll() is None and time.monotonic() < deadline:
            try:
                readings.append(scrape(old))
            except OSError:
                pass
            time.sleep(0.05)
        code = old.process.wait(timeout=30)
        converge(kubectl, "s", "s", keys, timeout=120)
    finally:
        old.process.send_signal(signal.SIGCONT)
        old.stop(signal.SIGKILL)
        new.stop()
    assert readings, "the resumed process served no metrics before it exited"
    assert [writes(r) for r in readings] == [before] * len(readings)
    # Not asserted: the leader gauge's 0 in the last reading. The elector sees the other
    # holder on its first read after SIGCONT and the process exits within one 50 ms poll
    # gap, so that reading is often never taken; what must hold is below and above: no
    # write went out, and the process exited with EXIT_LOST_LEADERSHIP.
    fenced = max(sum(v for (n, _), v in r.items() if n == "shard_operator_fenced_writes_total")
                 for r in readings)
    assert code == EXIT_LOST_LEADERSHIP
    assert "lost leadership" in old.output()
    print(f"split brain: takeover {takeover:.1f} s after SIGSTOP; the resumed leader made "
          f"0 writes ({before:g} before), refused {fenced:g}, exited {code}")
    clean_log(new)


def test_chart_refuses_several_replicas_without_election() -> None:
    refused = helm("template", "rel", str(CHART), "--set", "leaderElection.enabled=false",
                   check=False)
    assert refused.returncode != 0 and "leaderElection" in refused.stderr, refused.stderr
    for ok in (["--set", "leaderElection.enabled=false", "--set", "replicaCount=1"],
               ["--set", "replicaCount=3"], []):
        assert helm("template", "rel", str(CHART), *ok, check=False).returncode == 0, ok
