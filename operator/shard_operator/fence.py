"""The write fence: with leader election on, no write leaves this process unless it
holds a fresh lease.

The fence is *open* only while this replica leads and its last successful renewal
started less than the renew deadline ago (on the monotonic clock). The check reads the
clock at every call, so a process that was stopped (SIGSTOP, a long GC or VM pause) and
resumes past its deadline is refused at its very next write, before any watchdog or the
elector's own loop got to run. The renew deadline is shorter than the lease duration,
and another candidate measures the lease from when *it* saw the last renewal (no later
than when this one sent it), so the fence closes before the lease can pass to another.

Once closed after leading, the fence stays closed: the process exits (see
:mod:`.leader`) and its Deployment restarts it with a fresh cache.

Without election (``--no-leader-election``, or any process that is not the operator:
``shardctl``, the API, tests) the fence is not armed and lets everything through.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from . import metrics


class Fenced(Exception):
    """A write refused because this replica does not (or no longer) hold the lease."""

    def __init__(self, kind: str, verb: str, why: str) -> None:
        super().__init__(f"{verb} {kind} refused: {why}")
        self.kind, self.verb, self.why = kind, verb, why


class Fence:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.armed = False  # False: no election, every write goes through
        self.renew_deadline = 0.0
        self.leading = False
        self.ended: str | None = None  # why leadership ended; never reopens after
        self._renewed_at = -math.inf
        self._opened: asyncio.Event | None = None

    # ----- the elector's side ---------------------------------------------------------

    def arm(self, renew_deadline: float) -> None:
        """Election is on: closed until :meth:`lead`."""
        self.armed, self.renew_deadline = True, renew_deadline

    def renewed(self, started: float) -> None:
        """A create or update of the lease that began at ``started`` (monotonic)
        succeeded: the lease is ours until ``started + renew_deadline`` at least."""
        if self.ended is None:
            self._renewed_at = max(self._renewed_at, started)

    def lead(self) -> None:
        """Leadership acquired (after a successful :meth:`renewed`)."""
        if self.ended is None:
            self.leading = True
            metrics.LEADER.set(1)
            if self._opened is not None:
                self._opened.set()

    def close(self, why: str) -> None:
        """Stop every write now, for good."""
        if self.ended is None:
            self.ended = why
        self.leading = False
        self._renewed_at = -math.inf
        metrics.LEADER.set(0)

    # ----- the writers' side ----------------------------------------------------------

    @property
    def deadline(self) -> float:
        """Monotonic time after which the fence is closed (``-inf``: never renewed)."""
        return self._renewed_at + self.renew_deadline

    def expired(self) -> bool:
        """Leading, but past the renew deadline (what the watchdog looks for)."""
        return self.armed and self.leading and self.clock() >= self.deadline

    def is_open(self) -> bool:
        if not self.armed:
            return True
        return self.leading and self.ended is None and self.clock() < self.deadline

    def why_closed(self) -> str:
        if self.ended is not None:
            return f"leadership ended ({self.ended})"
        if not self.leading:
            return "not the leader"
        return "the lease was not renewed within the renew deadline"

    def check(self, kind: str, verb: str) -> None:
        """Raise :class:`Fenced` (and count it) unless the fence is open."""
        if not self.is_open():
            metrics.FENCED_WRITES.labels(kind, verb).inc()
            raise Fenced(kind, verb, self.why_closed())

    async def wait_open(self) -> None:
        """Return once this replica leads (at once without election)."""
        if not self.armed:
            return
        if self._opened is None:
            self._opened = asyncio.Event()
            if self.leading:
                self._opened.set()
        await self._opened.wait()

    def reset(self) -> None:
        """Disarm (tests)."""
        self.__init__(self.clock)  # type: ignore[misc]


# The one fence of this process: kube.Kube and writes.Writes check it.
FENCE = Fence()
