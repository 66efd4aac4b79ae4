"""Scenarios 2, 4 and 5 on a converged N = 1,000 operator run: idle cost,
start_shard latency, recovery from deleted pods."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from shard_operator import api
from shard_operator.client.keymap import KeyMapWatcher

from .. import stats
from ..context import Context, progress
from ..k8s import delta, write_counts
from ..proc import cpu_seconds
from .converge import NODE_ID, Live

SEED = 7


async def idle(ctx: Context, live: Live, window: float = 60.0) -> dict[str, Any]:
    """Writes to the operator's resources counted by the apiserver over ``window``
    seconds (apiserver_request_total deltas), and the operator's own write counter."""
    await asyncio.sleep(5.0)  # let the last status writes of the converge land
    before = write_counts(await ctx.api.text("/metrics"))
    own_before = live.operator.writes()
    cpu_before = cpu_seconds(live.operator.pid)
    started = time.monotonic()
    await asyncio.sleep(window)
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(live.operator.pid) - cpu_before
    after = write_counts(await ctx.api.text("/metrics"))
    own = live.operator.writes() - own_before
    by_resource = delta(after, before)
    return {"window_seconds": elapsed, "apiserver_writes": int(sum(by_resource.values())),
            "by_resource": by_resource, "operator_writes": int(own), "cpu_seconds": cpu,
            "cpu_percent": 100.0 * cpu / elapsed}


async def start_shard(ctx: Context, live: Live, calls: int = 200) -> dict[str, Any]:
    """``calls`` sequential api.astart_shard; each timed until its key is visible in a
    KeyMapWatcher (a separate client, as the Ordering side would have)."""
    samples: list[float] = []
    async with KeyMapWatcher(NODE_ID, namespace=live.namespace) as watcher:
        for i in range(calls):
            key = [f"started-{i}"]
            begin = time.monotonic()
            await api.astart_shard(NODE_ID, key, namespace=live.namespace, kube=ctx.kube)
            await watcher.wait_for(key, timeout=60)
            samples.append(time.monotonic() - begin)
            if (i + 1) % 50 == 0:
                progress(f"    start_shard {i + 1}/{calls}, p50 so far "
                         f"{stats.percentile(samples, 50):.3f} s")
    return {"calls": calls, "latency": stats.distribution(samples), "samples": samples}


async def recovery(ctx: Context, live: Live, fraction: float = 0.1, timeout: float = 300.0
                   ) -> dict[str, Any]:
    """Delete ``fraction`` of the Ready pods (fixed seed); per pod, the time until a new
    incarnation of it is Running and Ready."""
    names = sorted(live.pods.ready)
    victims = random.Random(SEED).sample(names, max(1, int(len(names) * fraction)))
    old = {name: live.pods.ready[name] for name in victims}
    started = time.monotonic()

    async def delete(name: str) -> None:
        await ctx.api.request("DELETE", f"/api/v1/namespaces/{live.namespace}/pods/{name}")

    await asyncio.gather(*(delete(n) for n in victims))

    def back() -> bool:
        return all(live.pods.ready.get(n) not in (None, old[n]) for n in victims)

    await live.pods.wait(back, timeout)
    all_back = time.monotonic() - started
    latencies = [live.pods.ready_at[live.pods.ready[n]] - started for n in victims]
    return {"deleted": len(victims), "latency": stats.distribution(latencies),
            "all_back_seconds": all_back}
