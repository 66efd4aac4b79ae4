"""The work queue of node ids, with rate-limited requeue (as client-go's
``RateLimitingQueue``).

Watch events ``add`` a ``(namespace, nodeId)``; a key added while it is being
reconciled runs once more afterwards, so bursts of events collapse into few passes. A
pass that must be retried is re-added after an exponential backoff
(``add_rate_limited``) until it succeeds (``forget``).
"""

from __future__ import annotations

import asyncio
import time

from . import pass_trace

NodeKey = tuple[str, str]  # (namespace, nodeId)

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
BACKOFF_MAX_DOUBLINGS = 6


def backoff(failures: int) -> float:
    """Seconds before the retry after ``failures`` failed passes in a row."""
    return min(BACKOFF_MAX_SECONDS,
               BACKOFF_BASE_SECONDS * 2 ** min(failures, BACKOFF_MAX_DOUBLINGS))


class WorkQueue:
    """A de-duplicating queue: a key is processed by one worker at a time, and not again
    before the pause its last pass asked for (see ``done``)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[NodeKey] = asyncio.Queue()
        self._queued: set[NodeKey] = set()
        self._active: set[NodeKey] = set()
        self._dirty: set[NodeKey] = set()
        self._paused: set[NodeKey] = set()
        self._not_before: dict[NodeKey, float] = {}
        self._failures: dict[NodeKey, int] = {}
        self._since: dict[NodeKey, float] = {}  # first add not yet served (tracing only)

    def add(self, key: NodeKey) -> None:
        if pass_trace.ENABLED:
            self._since.setdefault(key, time.monotonic())
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued and key not in self._paused:
            wait = self._not_before.pop(key, 0.0) - time.monotonic()
            if wait > 0:
                self._paused.add(key)
                asyncio.get_running_loop().call_later(wait, self._resume, key)
                return
            self._queued.add(key)
            self._queue.put_nowait(key)

    def _resume(self, key: NodeKey) -> None:
        self._paused.discard(key)
        self.add(key)

    def add_after(self, key: NodeKey, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self.add, key)

    def add_rate_limited(self, key: NodeKey) -> float:
        """Re-add ``key`` after the backoff its failures in a row call for; the delay."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = backoff(failures)
        self.add_after(key, delay)
        return delay

    def forget(self, key: NodeKey) -> None:
        """A pass of ``key`` succeeded: its next failure starts the backoff afresh."""
        self._failures.pop(key, None)

    def failures(self, key: NodeKey) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> NodeKey:
        key = await self._queue.get()
        self._queued.discard(key)
        self._active.add(key)
        return key

    def waited(self, key: NodeKey) -> float | None:
        """Seconds from the first add of ``key`` not yet served until now (when its
        pass starts); None unless tracing (:mod:`.pass_trace`) is on."""
        since = self._since.pop(key, None)
        return None if since is None else time.monotonic() - since

    def done(self, key: NodeKey, pause: float = 0.0) -> None:
        """Finish a pass; the next one starts ``pause`` seconds later at the earliest."""
        self._active.discard(key)
        if pause > 0:
            self._not_before[key] = time.monotonic() + pause
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)
