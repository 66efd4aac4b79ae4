"""Scenario 1: cold converge of N keys, by the operator and by two baselines.

Every system is timed from just before its first write until every pod is Running and
Ready (and, for the operator and the raw client, the key map lists N keys; for the
operator also the ShardSet's Ready condition is True).
"""

from __future__ import annotations

import asyncio
import copy
import time
from dataclasses import dataclass
from typing import Any

from shard_operator import keymap, render
from shard_operator.constants import API_VERSION
from shard_operator.keys import key_map_name, shard_name
from shard_operator.kube import CALL_ERRORS, ApiError, Kube, transient

from ..context import Context, progress
from ..k8s import PodTracker, Watching
from ..proc import Operator, cpu_seconds, rss_mb

NODE_ID = "bench"
HEADER = len(keymap.HEADER_FIELDS)


def schema(n: int) -> list[dict[str, Any]]:
    return [{"key": [f"k{i}"]} for i in range(n)]


class KeyMapTracker:
    """The key map's entries, and when each shard name was first seen listed."""

    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0
        self.data: dict[str, str] = {}
        self.first_seen: dict[str, float] = {}  # shard name -> first time listed

    def on_event(self, kind: str, obj: dict[str, Any]) -> None:
        self.data = {} if kind == "DELETED" else dict(obj.get("data") or {})
        self.count = max(0, len(self.data) - HEADER) if self.data else 0
        self.bytes = keymap.data_size(self.data)
        now = time.monotonic()
        for name in self.data:
            if name not in keymap.HEADER_FIELDS:
                self.first_seen.setdefault(name, now)


def registration_lags(pods: PodTracker, keys: KeyMapTracker) -> list[float]:
    """Per shard: seconds from its Pod first seen Ready to its key first seen in the map
    (0 when the key was listed before the Pod was Ready: its clients could already find
    it). Pods and shards share their names."""
    lags = []
    for name, uid in pods.ready.items():
        ready_at, listed_at = pods.ready_at.get(uid), keys.first_seen.get(name)
        if ready_at is not None and listed_at is not None:
            lags.append(max(0.0, listed_at - ready_at))
    return lags


class ShardSetTracker:
    def __init__(self) -> None:
        self.ready = False
        self.status: dict[str, Any] = {}

    def on_event(self, kind: str, obj: dict[str, Any]) -> None:
        self.status = obj.get("status") or {}
        self.ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                         for c in self.status.get("conditions") or [])


@dataclass
class Live:
    """A converged operator run kept alive for the scenarios that need one."""

    namespace: str
    operator: Operator
    watching: Watching
    pods: PodTracker
    keys: KeyMapTracker
    shardset: ShardSetTracker
    n: int


async def _sample_rss(pid: int, samples: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            samples.append(rss_mb(pid)[0])
        except OSError:
            return
        await asyncio.sleep(0.5)


async def operator(ctx: Context, n: int, *, keep: bool = False, timeout: float = 1800.0,
                   pythonpath: str = "", extra_spec: dict[str, Any] | None = None
                   ) -> tuple[dict[str, Any], Live | None]:
    """``pythonpath``: run the operator from another source tree (a before/after check);
    ``extra_spec``: more ShardSet spec fields (a template, an update strategy)."""
    ns = await ctx.namespace(f"op{n}")
    op = Operator(ns, ctx.kubeconfig, ctx.log_dir / f"operator-{ns}.log",
                  {"PYTHONPATH": pythonpath} if pythonpath else None)
    op.start()
    pods, keys, sset = PodTracker(), KeyMapTracker(), ShardSetTracker()
    watching = Watching(ctx.api)
    watching.add(f"/api/v1/namespaces/{ns}/pods", pods.on_event)
    watching.add(f"/api/v1/namespaces/{ns}/configmaps?fieldSelector=metadata.name="
                 f"{key_map_name(NODE_ID)}", keys.on_event)
    watching.add(f"/apis/shards.anoma.net/v1alpha1/namespaces/{ns}/shardsets", sset.on_event)
    await asyncio.sleep(0.5)
    body = {"apiVersion": API_VERSION, "kind": "ShardSet", "metadata": {"name": NODE_ID},
            "spec": {"nodeId": NODE_ID, "schema": schema(n), **(extra_spec or {})}}
    samples: list[float] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(op.pid, samples, stop))
    started, cpu_before = time.monotonic(), cpu_seconds(op.pid)
    status, answer = await ctx.api.request(
        "POST", f"/apis/shards.anoma.net/v1alpha1/namespaces/{ns}/shardsets", body)
    if status != 201:
        raise RuntimeError(f"creating the ShardSet: {status} {answer}")
    try:
        await _wait(pods, lambda: len(pods.ready) >= n and keys.count >= n and sset.ready,
                    timeout, lambda: f"{len(pods.ready)}/{n} pods Ready, {keys.count} keys, "
                    f"ShardSet {sset.status.get('readyShards')}/{sset.status.get('desiredShards')}",
                    keys, sset)
        seconds = time.monotonic() - started
        cpu = cpu_seconds(op.pid) - cpu_before
    finally:
        stop.set()
        await sampler
    await asyncio.sleep(2.0)
    steady, peak = rss_mb(op.pid)
    result = {"seconds": seconds, "cpu_seconds": cpu, "peak_mb": peak, "steady_mb": steady,
              "keymap_bytes": keys.bytes, "writes": op.writes(), "anatomy": op.anatomy(),
              "registration_lags": registration_lags(pods, keys)}
    live = Live(ns, op, watching, pods, keys, sset, n)
    if keep:
        return result, live
    await finish(ctx, live)
    return result, None


async def finish(ctx: Context, live: Live) -> None:
    await live.watching.close()
    live.operator.stop()
    try:
        await ctx.delete_namespace(live.namespace)
    except RuntimeError as error:
        # The figures are taken already: a namespace of 5,000 shards that a loaded
        # machine has not deleted within the timeout must not discard them (the next
        # run uses a namespace of its own).
        progress(f"    !! {error}; the figures are kept")


async def _wait(pods: PodTracker, done, timeout: float, describe, *others: Any) -> None:
    """Wait for ``done()``, waking on pod changes and polling the other trackers;
    print progress every 10 s."""
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not converged in {timeout} s: {describe()}")
        pods.changed.clear()
        try:
            await asyncio.wait_for(pods.changed.wait(), 0.1)
        except TimeoutError:
            pass
        if time.monotonic() - last > 10:
            progress(f"    … {describe()}")
            last = time.monotonic()


# ----- raw baseline ----------------------------------------------------------------------

def _raw_bodies(ns: str, n: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The same Service and Pod the operator renders, minus the owner reference (there is
    no Shard to own them)."""
    out = []
    for i in range(n):
        key = (f"k{i}".encode(),)
        name = shard_name(NODE_ID, key)
        shard = render.shard(name=name, namespace=ns, node_id=NODE_ID, segments=[f"k{i}"],
                             encoding="utf8", origin="schema", owner=None)
        shard["metadata"]["uid"] = "raw"
        service, pod = render.service(shard, key), render.pod(shard, key, None)
        for body in (service, pod):
            body["metadata"].pop("ownerReferences", None)
        out.append((service, pod))
    return out


async def _watch_pods(ctx: Context, ns: str) -> tuple[PodTracker, Watching]:
    """A watch of the namespace's pods, given a moment to start before any create."""
    pods = PodTracker()
    watching = Watching(ctx.api)
    watching.add(f"/api/v1/namespaces/{ns}/pods", pods.on_event)
    await asyncio.sleep(0.5)
    return pods, watching


async def _all_ready(ctx: Context, ns: str, pods: PodTracker, watching: Watching, n: int,
                     timeout: float, started: float) -> dict[str, Any]:
    """Seconds from ``started`` until ``n`` pods are Ready; then the namespace goes."""
    try:
        await _wait(pods, lambda: len(pods.ready) >= n, timeout,
                    lambda: f"{len(pods.ready)}/{n} pods Ready")
        seconds = time.monotonic() - started
    finally:
        await watching.close()
    await ctx.delete_namespace(ns)
    return {"seconds": seconds}


RAW_RETRIES = 5


async def create_retrying(kube: Kube, body: dict[str, Any], retried: list[str],
                          attempts: int = RAW_RETRIES) -> None:
    """Create ``body``, as the operator would in its next pass: an answer that a retry may
    change (a 504 from an overloaded API server, throttling, no answer) is retried after
    a short backoff; a 409 after a retry means the first attempt had landed."""
    for attempt in range(attempts):
        try:
            await kube.create(body)
            return
        except CALL_ERRORS as error:
            if isinstance(error, ApiError) and error.conflict:
                if attempt > 0:
                    return
                raise
            if not transient(error) or attempt == attempts - 1:
                raise
            retried.append(f"{body['kind']} {body['metadata']['name']}: {error}")
            await asyncio.sleep(0.2 * 2 ** attempt)


async def raw(ctx: Context, n: int, concurrency: int, timeout: float = 1800.0
              ) -> dict[str, Any]:
    ns = await ctx.namespace(f"raw{n}")
    bodies = _raw_bodies(ns, n)
    pods, watching = await _watch_pods(ctx, ns)
    limit = asyncio.Semaphore(concurrency)

    retried: list[str] = []

    async def one(service: dict[str, Any], pod: dict[str, Any]) -> None:
        async with limit:
            await create_retrying(ctx.kube, service, retried)
        async with limit:
            await create_retrying(ctx.kube, pod, retried)

    started = time.monotonic()
    await asyncio.gather(*(one(s, p) for s, p in bodies))
    if retried:
        progress(f"    raw client: {len(retried)} creates retried ({retried[0]})")
    entries = {s["metadata"]["name"]: (f"k{i}".encode(),) for i, (s, _) in enumerate(bodies)}
    data = keymap.render(NODE_ID, ns, entries)
    await ctx.kube.create({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": key_map_name(NODE_ID), "namespace": ns},
                           "data": data})
    return await _all_ready(ctx, ns, pods, watching, n, timeout, started)


# ----- StatefulSet baseline --------------------------------------------------------------

def statefulset_objects(ns: str, n: int, pod_spec: dict[str, Any],
                        update_strategy: dict[str, Any] | None = None
                        ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The baseline's headless Service and StatefulSet of N replicas (Parallel) running
    ``pod_spec``; the converge and rollout scenarios share them."""
    labels = {"app": "bench-sts"}
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "bench", "namespace": ns},
               "spec": {"clusterIP": "None", "selector": labels,
                        "ports": [{"name": "shard", "port": 8080}]}}
    spec: dict[str, Any] = {
        "replicas": n, "podManagementPolicy": "Parallel", "serviceName": "bench",
        "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": pod_spec}}
    if update_strategy is not None:
        spec["updateStrategy"] = update_strategy
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": "bench", "namespace": ns}, "spec": spec}
    return service, sts


async def statefulset(ctx: Context, n: int, timeout: float = 1800.0) -> dict[str, Any]:
    ns = await ctx.namespace(f"sts{n}")
    pods, watching = await _watch_pods(ctx, ns)
    spec = copy.deepcopy(render.default_pod_spec())
    spec["containers"][0]["env"] = [{"name": "SHARD_NODE_ID", "value": NODE_ID}]
    service, sts = statefulset_objects(ns, n, spec)
    started = time.monotonic()
    await ctx.kube.create(service)
    status, body = await ctx.api.request("POST", f"/apis/apps/v1/namespaces/{ns}/statefulsets",
                                         sts)
    if status != 201:
        raise RuntimeError(f"creating the StatefulSet: {status} {body}")
    return await _all_ready(ctx, ns, pods, watching, n, timeout, started)
