"""Scenario 8: rolling a pod template over N shards, by the operator and by a StatefulSet.

The operator converges a ShardSet of N keys with ``updateStrategy: RollingUpdate``,
``maxUnavailable: 1``; its template's ``BENCH_ROLL`` env var is changed and the rollout
timed until every pod is updated and Ready; then the strategy is set to
``maxUnavailable: 10%`` and the template changed again. The StatefulSet (N replicas,
``podManagementPolicy: Parallel``, the same pod spec) rolls its template once with its
default ``RollingUpdate`` (one pod at a time: its ``maxUnavailable`` is alpha, off in
the private cluster). Every figure comes from the harness's own pod watch
(:mod:`bench.rollouts`).
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

from shard_operator import render

from .. import rollouts
from ..context import Context, progress
from ..k8s import PodTracker, Watching
from ..rollouts import MARKER, Observation, Rollout
from . import converge

SHARDSETS = "/apis/shards.anoma.net/v1alpha1/namespaces/{ns}/shardsets"


def pod_spec(value: str, node_id: str | None = None) -> dict[str, Any]:
    """The default shard pod spec with ``BENCH_ROLL=value`` in its first container (and,
    for the StatefulSet, the SHARD_NODE_ID the operator would add)."""
    spec = copy.deepcopy(render.default_pod_spec())
    env = [{"name": MARKER, "value": value}]
    if node_id is not None:
        env.insert(0, {"name": "SHARD_NODE_ID", "value": node_id})
    spec["containers"][0]["env"] = env
    return spec


class Watched:
    """A :class:`Rollout` fed by a pod watch, with an event to wake a waiter."""

    def __init__(self, rollout: Rollout) -> None:
        self.rollout = rollout
        self.changed = asyncio.Event()

    def on_event(self, kind: str, pod: dict[str, Any]) -> None:
        self.rollout.observe(Observation.of(kind, pod, time.monotonic()))
        self.changed.set()


class NodeLog:
    """Each change of a node's Ready condition or taints seen during a rollout (seconds
    from its start): a KWOK node found NotReady has its pods marked unready, which would
    count against the budget without the operator doing anything."""

    def __init__(self) -> None:
        self.started_at: float | None = None
        self.state: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.changes: list[dict[str, Any]] = []

    def on_event(self, kind: str, node: dict[str, Any]) -> None:
        name = node["metadata"]["name"]
        ready = next((c.get("status", "") for c in (node.get("status") or {}).get(
            "conditions") or [] if c.get("type") == "Ready"), "")
        taints = tuple(sorted(f"{t.get('key')}:{t.get('effect')}"
                              for t in (node.get("spec") or {}).get("taints") or []))
        state = (ready, taints)
        if self.state.get(name) != state and self.started_at is not None:
            self.changes.append({"at": round(time.monotonic() - self.started_at, 3),
                                 "node": name, "ready": ready, "taints": list(taints)})
        self.state[name] = state


async def _roll(ctx: Context, ns: str, desired: int, want: str, change: Any, label: str,
                timeout: float) -> dict[str, Any]:
    """Watch the namespace's pods, send ``change()`` (the template change), and wait
    until all ``desired`` pods are updated and Ready."""
    watched = Watched(Rollout(desired, want))
    watching = Watching(ctx.api)
    listed = asyncio.Event()
    original = watched.on_event

    def on_event(kind: str, pod: dict[str, Any]) -> None:
        original(kind, pod)
        listed.set()

    watching.add(f"/api/v1/namespaces/{ns}/pods", on_event)
    nodes = NodeLog()
    watching.add("/api/v1/nodes", nodes.on_event)
    try:
        await asyncio.wait_for(listed.wait(), 60)
        await asyncio.sleep(0.5)  # the rest of the listing
        rollout = watched.rollout
        if rollout.available < desired:
            raise RuntimeError(f"{label}: only {rollout.available}/{desired} pods Ready "
                               "before the rollout")
        rollout.start(time.monotonic())
        nodes.started_at = rollout.started_at
        await change()
        deadline, last = time.monotonic() + timeout, time.monotonic()
        while not rollout.done:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{label}: not rolled out in {timeout} s: "
                                   f"{rollout.updated_available}/{desired} updated and Ready")
            watched.changed.clear()
            try:
                await asyncio.wait_for(watched.changed.wait(), 1.0)
            except TimeoutError:
                pass
            if time.monotonic() - last > 15:
                progress(f"    … {label}: {rollout.updated_available}/{desired} updated and "
                         f"Ready, {rollout.unavailable} unavailable (peak "
                         f"{rollout.peak_unavailable})")
                last = time.monotonic()
    finally:
        await watching.close()
    figures = rollout.figures()
    figures["node_changes"] = nodes.changes
    if figures["disrupted"] or nodes.changes:
        progress(f"    {label}: {figures['disrupted']} pods made unready with no deletion; "
                 f"node changes: {nodes.changes[:10]}")
    progress(f"    {label}: median s " + ", ".join(
        f"{step} {d['p50']:.3f}" for step, d in figures["steps"].items() if d.get("count")))
    return figures


async def operator(ctx: Context, n: int, timeout: float = 3600.0, *, pythonpath: str = "",
                   name: str = "operator", budgets: list[int | str] | None = None
                   ) -> dict[str, Any]:
    """The operator's rollouts on one converged ShardSet, one per ``budgets`` entry
    (maxUnavailable 1, then 10%, by default); ``pythonpath``: the operator of another
    source tree, reported as ``name``."""
    budgets = budgets or [1, "10%"]
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": budgets[0]}}
    _, live = await converge.operator(
        ctx, n, keep=True, timeout=timeout, pythonpath=pythonpath,
        extra_spec={"template": {"spec": pod_spec("0")}, "updateStrategy": strategy})
    assert live is not None
    # The converge's watches (pods, key map, the ShardSet with its N-entry spec) end here:
    # the rollout has its own pod watch, as the StatefulSet's has, and nothing else.
    await live.watching.close()
    path = SHARDSETS.format(ns=live.namespace) + f"/{converge.NODE_ID}"
    out: dict[str, Any] = {}
    try:
        for index, max_unavailable in enumerate(budgets):
            value, label = str(index + 1), f"{name}@{max_unavailable}"
            patch: dict[str, Any] = {"spec": {"template": {"spec": pod_spec(value)}}}
            if index:
                # The strategy first, on its own: the rollout is timed from the template.
                await _patch(ctx, path, {"spec": {"updateStrategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": max_unavailable}}}})
                await asyncio.sleep(3.0)

            async def change(patch: dict[str, Any] = patch) -> None:
                await _patch(ctx, path, patch)

            cpu_before = _cpu(live)
            anatomy_before = live.operator.anatomy()
            progress(f"scenario 8: N={n} {label}: template change")
            figures = await _roll(ctx, live.namespace, n, value, change, label, timeout)
            figures["budget"] = rollouts.budget(max_unavailable, n)
            figures["cpu_seconds"] = _cpu(live) - cpu_before
            after = live.operator.anatomy()
            figures["passes"] = after.get("reconciles_total", 0.0) - anatomy_before.get(
                "reconciles_total", 0.0)
            figures["pass_seconds"] = after.get(
                "reconcile_duration_seconds_sum", 0.0) - anatomy_before.get(
                "reconcile_duration_seconds_sum", 0.0)
            out[label] = figures
            progress(f"    {figures['seconds']:.1f} s, peak unavailable "
                     f"{figures['peak_unavailable']} (budget {figures['budget']}), "
                     f"{figures['passes']:.0f} passes, operator CPU "
                     f"{figures['cpu_seconds']:.1f} s")
    finally:
        await converge.finish(ctx, live)
    return out


def _cpu(live: converge.Live) -> float:
    from ..proc import cpu_seconds
    return cpu_seconds(live.operator.pid)


async def _patch(ctx: Context, path: str, body: dict[str, Any]) -> None:
    status, answer = await ctx.api.request("PATCH", path, body,
                                           content_type="application/merge-patch+json")
    if status != 200:
        raise RuntimeError(f"PATCH {path}: {status} {answer}")


async def statefulset(ctx: Context, n: int, timeout: float = 3600.0) -> dict[str, Any]:
    """A StatefulSet of N replicas converged, then its template rolled once."""
    ns = await ctx.namespace(f"stsroll{n}")
    service, sts = converge.statefulset_objects(ns, n, pod_spec("0", converge.NODE_ID),
                                                {"type": "RollingUpdate"})
    path = f"/apis/apps/v1/namespaces/{ns}/statefulsets"
    try:
        pods = PodTracker()
        watching = Watching(ctx.api)
        watching.add(f"/api/v1/namespaces/{ns}/pods", pods.on_event)
        try:
            await ctx.kube.create(service)
            status, body = await ctx.api.request("POST", path, sts)
            if status != 201:
                raise RuntimeError(f"creating the StatefulSet: {status} {body}")
            progress(f"scenario 8: N={n} StatefulSet: converging")
            await pods.wait(lambda: len(pods.ready) >= n, timeout)
        finally:
            await watching.close()

        async def change() -> None:
            await _patch(ctx, f"{path}/bench", {"spec": {"template": {
                "spec": pod_spec("1", converge.NODE_ID)}}})

        progress(f"scenario 8: N={n} statefulset@1: template change")
        figures = await _roll(ctx, ns, n, "1", change, "statefulset@1", timeout)
        figures["budget"] = 1
        progress(f"    {figures['seconds']:.1f} s, peak unavailable "
                 f"{figures['peak_unavailable']}")
        return {"statefulset@1": figures}
    finally:
        await ctx.delete_namespace(ns)
