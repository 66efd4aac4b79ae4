"""The sync loop (as the StatefulSet controller's ``stateful_set.go``): workers take
node ids from the work queue (:mod:`.workqueue`) and run one reconcile pass each
(:mod:`.steps`); a pass that failed is re-queued with backoff, a pass whose Degraded
condition may clear with time is re-queued then, and a slow resync re-queues every
node id as a safety net.

Only the leader's workers run: they start once the cache is synced *and* the write
fence is open (:mod:`.fence`; at once without leader election). A standby keeps its
cache current from the watches, so a takeover starts from a warm cache.

Watch events enqueue ``(namespace, nodeId)``; a key enqueued while it is being
reconciled runs once more afterwards, so bursts of events collapse into few passes.
"""

from __future__ import annotations

import asyncio
import logging
import time

from . import metrics, pass_trace, steps
from .cache import Cache
from .decisions import Pass, pass_pause
from .fence import FENCE, Fenced
from .kube import Kube
from .workqueue import WorkQueue
from .writes import Writes

log = logging.getLogger("shard_operator.controller")
PAUSE_MAX_SECONDS = 5.0
PAUSE_MIN_SECONDS = 0.05  # a pass that kept the CPU less than this is followed at once


class Controller:
    def __init__(self, kube: Kube, cache: Cache, *, workers: int = 2, concurrency: int = 48,
                 resync_seconds: float = 300.0) -> None:
        self.kube = kube
        self.cache = cache
        self.queue = WorkQueue()
        self.writes = Writes(kube, cache, concurrency=concurrency)
        self.workers = workers
        self.resync_seconds = resync_seconds
        self._tasks: list[asyncio.Task[None]] = []
        self._synced = asyncio.Event()
        self._rolling: set[tuple[str, str]] = set()  # node ids whose last pass rolled pods

    def start(self, wait_for_sync: bool = True) -> None:
        """Start the workers; with ``wait_for_sync`` they begin once the cache is synced
        (see ``Cache.expect``), and never before this replica leads."""
        async def sync() -> None:
            if wait_for_sync:
                await self.wait_until_synced()
            if FENCE.armed and not FENCE.is_open():
                log.info("standing by: the controller starts when this replica leads")
            await FENCE.wait_open()
            self._synced.set()
        self._tasks.append(asyncio.create_task(sync(), name="sync"))
        for index in range(self.workers):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"reconcile-{index}"))
        self._tasks.append(asyncio.create_task(self._resync(), name="resync"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def enqueue(self, namespace: str, node_id: str | None) -> None:
        if node_id:
            self.queue.add((namespace, node_id))

    async def _resync(self) -> None:
        """A slow safety net; changes are driven by watch events, not by this."""
        while True:
            await asyncio.sleep(self.resync_seconds)
            for key in self.cache.nodes():
                self.queue.add(key)

    async def wait_until_synced(self, check_after: float = 5.0, sample: int = 50) -> None:
        """Hold the first pass until every object listed at start-up has come through the
        watches, so that it never acts on a partial view (it would drop keys from the key
        map, or rewrite statuses).

        An object deleted between that listing and kopf's own never arrives: when no
        event has come for ``check_after`` seconds, up to ``sample`` of the missing
        objects are looked up and the deleted ones forgotten, with the pause doubling up
        to a minute)."""
        stalled, last, pause = 0.0, -1, check_after
        while not self.cache.synced:
            left = len(self.cache.pending or ())
            stalled = stalled + 0.5 if left == last else 0.0
            last = left
            if stalled >= pause and left:
                for kind, namespace, name in list(self.cache.pending or ())[:sample]:
                    if not await self.kube.exists(kind, namespace, name):
                        self.cache.forget_pending(kind, namespace, name)
                stalled, pause = 0.0, min(pause * 2, 60.0)
            await asyncio.sleep(0.5)
        log.info("cache synced: %d objects", self.cache.size())
        for key in self.cache.nodes():
            self.queue.add(key)

    async def _worker(self) -> None:
        await self._synced.wait()
        while True:
            key = await self.queue.get()
            trace = pass_trace.begin("/".join(key), self.queue.waited(key))
            started, cpu = time.monotonic(), time.process_time()
            rolling = False
            try:
                reasons = await self.reconcile(*key)
                rolling = key in self._rolling
                retry = bool(reasons)
                if retry:
                    log.warning("reconcile of %s/%s is retried: %s", *key, "; ".join(reasons[:3]))
                else:
                    self.queue.forget(key)
            except asyncio.CancelledError:
                raise
            except Fenced as refused:  # leadership ended: the process is exiting
                log.warning("reconcile of %s/%s stopped: %s", *key, refused)
                retry = False
            except Exception:
                log.exception("reconcile of %s/%s failed", *key)
                retry = True
            finally:
                metrics.RECONCILES.labels("ShardSet").inc()
                elapsed = time.monotonic() - started
                metrics.RECONCILE_SECONDS.labels("ShardSet").observe(elapsed)
                # A pass costs O(shards) of CPU: events arriving meanwhile are batched into
                # the next one, which waits for the CPU time this one took beyond the time
                # it spent waiting on the API server (at most PAUSE_MAX_SECONDS), so that
                # watch events are not starved of the event loop at 10,000 shards. A pass
                # that mostly waited let the watches run meanwhile. No pause after a cheap
                # pass, nor in a rollout: its passes find all but a shard or two unchanged,
                # and each waits for the next pod's readiness.
                busy = time.process_time() - cpu
                pause = pass_pause(busy, elapsed, PAUSE_MAX_SECONDS)
                if rolling or pause < PAUSE_MIN_SECONDS:
                    pause = 0.0
                self._rolling.discard(key)
                self.queue.done(key, pause=pause)
                if trace is not None:
                    trace.finish(pause)
            if retry:
                metrics.RECONCILE_ERRORS.labels("ShardSet").inc()
                self.queue.add_rate_limited(key)

    async def reconcile(self, namespace: str, node_id: str) -> list[str]:
        """One pass over one node id (:func:`steps.run`); returns why it should be
        retried (empty: it need not be)."""
        run = Pass()
        try:
            await steps.run(self.writes, namespace, node_id, run)
            if run.rolling:
                self._rolling.add((namespace, node_id))
        finally:
            if run.recheck is not None:  # Degraded may clear then, with no event to say so
                self.queue.add_after((namespace, node_id), run.recheck)
        return run.errors + run.retry + run.template_refused
