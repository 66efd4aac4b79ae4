"""Scenario 8's pure parts (bench.rollouts) and the harness watch's resumption
(bench.k8s.KubeHttp.watch against a fake API server on loopback). No cluster."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web

from bench import report, rollouts
from bench.k8s import KubeHttp, relist_events
from bench.rollouts import Observation, Rollout, replay
from bench.targets import evaluate


def pod(name: str, uid: str, marker: str, *, ready: bool = True, deleting: bool = False
        ) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": uid, "namespace": "ns"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta,
            "spec": {"containers": [{"name": "shard", "env": [
                {"name": "SHARD_NODE_ID", "value": "x"},
                {"name": rollouts.MARKER, "value": marker}]}]},
            "status": {"phase": "Running" if ready else "Pending", "conditions": [
                {"type": "Ready", "status": "True" if ready else "False"}]}}


def obs(at: float, kind: str, body: dict[str, Any]) -> Observation:
    return Observation.of(kind, body, at)


def initial(n: int) -> list[Observation]:
    return [obs(0.0, "ADDED", pod(f"p{i}", f"old{i}", "0")) for i in range(n)]


def replace(at: float, i: int, *, ready_after: float = 1.0) -> list[Observation]:
    """The operator's way: the old pod is deleted, a new one made, then Ready."""
    return [obs(at, "MODIFIED", pod(f"p{i}", f"old{i}", "0", deleting=True)),
            obs(at + 0.1, "DELETED", pod(f"p{i}", f"old{i}", "0", deleting=True)),
            obs(at + 0.2, "ADDED", pod(f"p{i}", f"new{i}", "1", ready=False)),
            obs(at + ready_after, "MODIFIED", pod(f"p{i}", f"new{i}", "1"))]


def test_marker_and_availability_of_a_pod():
    assert rollouts.marker(pod("a", "u", "7")) == "7"
    assert rollouts.marker({"spec": {"containers": [{"name": "c"}]}}) is None
    assert rollouts.marker({}) is None
    assert rollouts.available(pod("a", "u", "0"))
    assert not rollouts.available(pod("a", "u", "0", ready=False))
    assert not rollouts.available(pod("a", "u", "0", deleting=True))


def test_one_at_a_time_rollout_lasts_until_the_last_replacement_is_ready():
    after = replace(1.0, 0) + replace(3.0, 1) + replace(5.0, 2)
    figures = replay(initial(3), after, desired=3, want="1", started_at=0.5)
    assert figures["seconds"] == pytest.approx(6.0 - 0.5)
    assert figures["peak_unavailable"] == 1
    assert figures["replaced"] == 3
    assert figures["done"]
    # unavailable 1 s of each 2 s window from 1.0 to 6.0: 3 s over 5.5 s
    assert figures["mean_unavailable"] == pytest.approx(3.0 / 5.5)


def test_peak_counts_every_state_the_watch_shows():
    # Two replaced at once: the second deleted before the first replacement is Ready.
    after = replace(1.0, 0, ready_after=2.0) + replace(1.5, 1)
    after.sort(key=lambda o: o.at)
    figures = replay(initial(2), after, desired=2, want="1", started_at=0.0)
    assert figures["peak_unavailable"] == 2
    assert figures["seconds"] == pytest.approx(3.0)


def test_not_done_while_an_updated_pod_is_not_ready_or_an_old_one_remains():
    rollout = Rollout(desired=2, want="1")
    for o in initial(2):
        rollout.observe(o)
    rollout.start(0.0)
    for o in replace(1.0, 0)[:3]:  # p0 new but not Ready
        rollout.observe(o)
    assert not rollout.done and rollout.unavailable == 1
    rollout.observe(replace(1.0, 0)[3])
    assert not rollout.done and rollout.unavailable == 0  # p1 still old
    assert rollout.updated_available == 1
    assert rollout.figures()["seconds"] is None


def test_a_late_deletion_of_the_old_pod_does_not_remove_its_replacement():
    rollout = Rollout(desired=1, want="1")
    rollout.observe(obs(0.0, "ADDED", pod("p0", "old", "0")))
    rollout.start(0.0)
    rollout.observe(obs(1.0, "ADDED", pod("p0", "new", "1")))
    rollout.observe(obs(1.1, "DELETED", pod("p0", "old", "0")))
    assert rollout.done and rollout.figures()["seconds"] == pytest.approx(1.0)


def test_a_pod_missing_from_the_set_counts_as_unavailable():
    rollout = Rollout(desired=3, want="1")
    for o in initial(2):
        rollout.observe(o)
    rollout.start(0.0)
    assert rollout.unavailable == 1 and rollout.peak_unavailable == 1


@pytest.mark.parametrize(("value", "desired", "expected"), [
    (1, 1000, 1), (3, 10, 3), ("10%", 1000, 100), ("10%", 5, 1), ("10%", 101, 11),
    ("100%", 7, 7), (0, 10, 1)])
def test_budget_as_the_operator_reads_max_unavailable(value, desired, expected):
    assert rollouts.budget(value, desired) == expected


def run_figures(seconds: float, peak: int, budget: int) -> dict[str, Any]:
    return {"seconds": seconds, "peak_unavailable": peak, "budget": budget,
            "mean_unavailable": 0.9, "replaced": 10, "desired": 10, "done": True,
            "passes": 20.0}


def test_summary_pairs_each_run_with_its_statefulset_and_keeps_the_worst_peak():
    runs = [{"operator@1": run_figures(90, 1, 1), "operator@10%": run_figures(20, 3, 100),
             "statefulset@1": run_figures(100, 1, 1)},
            {"operator@1": run_figures(120, 1, 1), "operator@10%": run_figures(25, 7, 100),
             "statefulset@1": run_figures(100, 1, 1)}]
    summary = rollouts.summarize(1000, runs)
    assert summary["seconds"]["operator@1"]["median"] == 105
    assert summary["ratios"]["operator@1/statefulset"]["values"] == [0.9, 1.2]
    assert summary["ratios"]["operator@10%/statefulset"]["median"] == pytest.approx(0.225)
    assert summary["peak_unavailable"] == {"operator@1": 1, "operator@10%": 7,
                                           "statefulset@1": 1}
    assert summary["budget"]["operator@10%"] == 100
    targets = {t.figure: t for t in evaluate({"rollout": summary})}
    ratio = targets["N=1000 rollout operator (maxUnavailable 1) / StatefulSet "
                    "(median of per-run ratios)"]
    assert ratio.value == pytest.approx(1.05) and not ratio.met
    peak = targets["N=1000 operator@10%: peak unavailable pods seen through the watch"]
    assert peak.met and peak.target == "<= 100"
    markdown = report.markdown(report.document({"rollout": summary}, {}, {}))
    assert "## 8 Rollout" in markdown and "| operator@1 | 105.00 (90.00-120.00, 2 runs)" \
        in markdown


def test_targets_missed_when_over_budget_or_the_operator_did_not_finish():
    runs = [{"operator@1": run_figures(50, 2, 1), "statefulset@1": run_figures(100, 1, 1)}]
    targets = {t.figure: t for t in evaluate({"rollout": rollouts.summarize(100, runs)})}
    assert targets["N=100 operator@1: peak unavailable pods seen through the watch"].met \
        is False
    failed = rollouts.summarize(100, [{"statefulset@1": run_figures(100, 1, 1)}])
    ratio = evaluate({"rollout": failed})[0]
    assert ratio.value is None and not ratio.met
    assert evaluate({}) == [] or all(t.scenario != rollouts.SCENARIO for t in evaluate({}))


def test_relist_delivers_what_vanished_as_deleted():
    known: dict[str, dict[str, Any]] = {}
    first = relist_events(known, [pod("a", "1", "0"), pod("b", "2", "0")])
    assert [(k, o["metadata"]["name"]) for k, o in first] == [("ADDED", "a"), ("ADDED", "b")]
    second = relist_events(known, [pod("b", "2", "0")])
    assert [(k, o["metadata"]["name"]) for k, o in second] == [("ADDED", "b"), ("DELETED", "a")]
    assert set(known) == {"ns/b"}


class FakeApi:
    """A list and three watch streams: the first ends after two events (a dropped
    watch), the second answers 410 Gone, then a re-list and a watch that stays open."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.lists = 0
        self.fifth = asyncio.Event()  # list, watch, watch (410), list, watch

    def item(self, name: str, version: str) -> dict[str, Any]:
        body = pod(name, name, "0")
        body["metadata"]["resourceVersion"] = version
        return body

    async def handle(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        self.requests.append(query)
        if len(self.requests) >= 5:
            self.fifth.set()
        if "watch" not in query:
            self.lists += 1
            items = [self.item("a", "5")] if self.lists == 1 else [self.item("c", "30")]
            return web.json_response({"items": items,
                                      "metadata": {"resourceVersion": str(10 * self.lists)}})
        response = web.StreamResponse()
        await response.prepare(request)
        watches = sum(1 for r in self.requests if "watch" in r)
        if watches == 1:
            for event in ({"type": "ADDED", "object": self.item("b", "11")},
                          {"type": "BOOKMARK", "object": {"metadata": {
                              "resourceVersion": "12"}}}):
                await response.write(json.dumps(event).encode() + b"\n")
        elif watches == 2:
            await response.write(json.dumps({"type": "ERROR", "object": {
                "code": 410, "reason": "Expired"}}).encode() + b"\n")
        else:
            await asyncio.sleep(1)
        return response


async def test_a_dropped_watch_resumes_from_its_last_version_and_lists_again_on_410():
    fake = FakeApi()
    app = web.Application()
    app.router.add_get("/api/v1/namespaces/ns/pods", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    api = KubeHttp.plain(f"http://127.0.0.1:{port}")
    seen: list[tuple[str, str]] = []
    stop = asyncio.Event()
    task = asyncio.create_task(api.watch(
        "/api/v1/namespaces/ns/pods", lambda k, o: seen.append((k, o["metadata"]["name"])),
        stop))
    try:
        await asyncio.wait_for(fake.fifth.wait(), 10)
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await api.close()
        await runner.cleanup()
    watch_versions = [r["resourceVersion"] for r in fake.requests if "watch" in r]
    # from the listing (10), from the bookmark after the drop (12), from the re-list (20)
    assert watch_versions[:3] == ["10", "12", "20"]
    assert fake.lists == 2
    assert seen == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c"), ("DELETED", "a"),
                    ("DELETED", "b")]


def test_steps_of_each_replacement_and_the_reaction_to_the_last_ready():
    after = replace(1.0, 0) + replace(3.0, 1)
    rollout = Rollout(desired=2, want="1")
    for o in initial(2):
        rollout.observe(o)
    rollout.start(0.5)
    for o in after:
        rollout.observe(o)
    steps = rollout.figures()["steps"]
    assert steps["deleting_to_gone"]["p50"] == pytest.approx(0.1)
    assert steps["gone_to_created"]["p50"] == pytest.approx(0.1)
    assert steps["created_to_ready"]["p50"] == pytest.approx(0.8)
    # p0's replacement Ready at 2.0, p1 marked deleted at 3.0
    assert steps["ready_to_next_delete"]["count"] == 1
    assert steps["ready_to_next_delete"]["p50"] == pytest.approx(1.0)


def test_a_pod_made_unready_without_a_deletion_counts_as_disrupted() -> None:
    """Ready → not Ready with no deletionTimestamp (the node lifecycle controller on a node
    it found NotReady) is counted; a replacement's deletion is not."""
    rollout = Rollout(2, "1")
    rollout.observe(Observation.of("ADDED", pod("a", "ua", "0"), 0.0))
    rollout.observe(Observation.of("ADDED", pod("b", "ub", "0"), 0.0))
    rollout.start(1.0)
    rollout.observe(Observation.of("MODIFIED", pod("a", "ua", "0", deleting=True), 2.0))
    rollout.observe(Observation.of("MODIFIED", pod("b", "ub", "0", ready=False), 3.0))
    assert rollout.figures()["disrupted"] == 1
    assert rollout.disrupted == {"ub"}
