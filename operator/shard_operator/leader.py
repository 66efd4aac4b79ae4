"""Leader election on a ``coordination.k8s.io/v1`` Lease, tied to the write fence
(:mod:`.fence`). The decisions are :mod:`.lease`'s; this is the loop, over the
elector's own :class:`~.kube.Kube` (``fence=None``: the Lease writes are what open the
fence, so they never pass it).

- Every replica runs kopf's watches and fills its cache; only the leader's controller
  works (its workers wait for the fence to open, see ``Controller.start``).
- Every retry period (standbys: with up to 20 % jitter) the elector reads the Lease
  and, if it is ours, free or expired, writes itself as holder; each read and write
  has a timeout (half the renew deadline, at least 1 s) and every failure is one failed
  attempt. Each successful create or update of the Lease by this replica renews the
  fence from the moment the write was *sent*.
- Leadership ends when a renewal has not succeeded within the renew deadline, when the
  watchdog finds the deadline passed (even if the elector's loop is stuck in a request,
  or the whole process was stopped), when the leader reads another holder in the Lease
  (at once: that one believes it leads), or when the elector fails while leading. Then
  the fence closes at once, ``on_lost`` stops the operator, and the process exits
  non-zero (:data:`EXIT_LOST_LEADERSHIP`) so that its Deployment restarts it with a
  fresh cache; a hard exit follows if the graceful stop takes too long.
- On a graceful stop (SIGTERM) the leader closes the fence, then releases the Lease
  (no holder, 1 s duration), so that a standby takes over within one retry period.

Times written are UTC with microseconds whatever the TZ; a lost race (409, another
replica's write won on resourceVersion) is logged at debug level only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import lease
from .election import JITTER, ElectionConfig
from .fence import Fence
from .kube import CALL_ERRORS, LEASE, Api, ApiError, Kube

log = logging.getLogger("shard_operator.leader")

EXIT_LOST_LEADERSHIP = 3
HARD_EXIT_SECONDS = 10.0  # after leadership is lost, the longest graceful stop

micro_time = lease.micro_time


class Leader:
    """Runs the election of one process; ``on_lost`` is called once when leadership
    ends (the fence is already closed then)."""

    def __init__(self, config: ElectionConfig, fence: Fence, api: Api,
                 on_lost: Callable[[str], None],
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.config, self.fence, self.api, self.on_lost = config, fence, api, on_lost
        self.kube = Kube(api, fence=None)  # the Lease writes open the fence: not fenced
        self.timeout = max(1.0, config.renew_deadline / 2)
        self.now = now
        self.observed: lease.Observed | None = None
        self.renewed_at: float | None = None  # when the last successful write was sent
        self.lost: str | None = None
        self.acquired_at: float | None = None
        self.stopped = False
        self._tasks: list[asyncio.Task[None]] = []
        fence.arm(config.renew_deadline)

    @property
    def where(self) -> str:
        return f"Lease {self.config.namespace}/{self.config.name}"

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._elect(), name="leader-election"),
                       asyncio.create_task(self._watchdog(), name="leader-watchdog")]

    async def _read(self) -> dict[str, Any] | None:
        try:
            async with asyncio.timeout(self.timeout):
                return await self.kube.get(LEASE.kind, self.config.namespace,
                                           self.config.name)
        except ApiError as error:
            if error.not_found:
                return None
            raise

    async def attempt(self) -> bool:
        """One try to acquire or renew: True if this replica holds the Lease now (the
        fence renewed). Failures are logged and answer False."""
        what = self.where
        try:
            current = await self._read()
        except CALL_ERRORS as error:
            log.warning("reading %s: %s", what, _describe(error))
            return False
        clock = self.fence.clock
        if current is not None:
            self.observed = lease.observe(self.observed, current.get("spec") or {}, clock())
        decision = lease.decide(self.config.identity, current, self.observed, clock(),
                                self.config.lease_duration, self.fence.leading)
        if decision is lease.Decision.WAIT:
            return False
        if decision is lease.Decision.LOST:
            self.lose(f"the Lease names another holder, "
                      f"{lease.holder((current or {}).get('spec'))!r}")
            return False
        spec = lease.spec_for(self.config.identity, (current or {}).get("spec"),
                              self.config.lease_duration, self.now())
        body = lease.body(self.config.name, self.config.namespace, spec, current)
        sent = clock()
        try:
            async with asyncio.timeout(self.timeout):
                if decision is lease.Decision.CREATE:
                    answer = await self.kube.create(body)
                else:
                    answer = await self.kube.replace(body)
        except CALL_ERRORS as error:
            # 409: another replica wrote first (its resourceVersion won): not ours.
            conflict = isinstance(error, ApiError) and error.status in (409,)
            log.log(logging.DEBUG if conflict else logging.WARNING, "%s %s: %s",
                    "creating" if decision is lease.Decision.CREATE else "updating", what,
                    _describe(error))
            return False
        self.observed = lease.observe(self.observed, answer.get("spec") or {}, clock())
        self.renewed_at = sent
        self.fence.renewed(sent)
        return True

    async def _started(self) -> None:
        self.fence.lead()
        self.acquired_at = time.monotonic()
        log.info("leading: holding %s as %s", self.where, self.config.identity)

    async def _elect(self) -> None:
        log.info("waiting for %s as %s (lease %g s, renew deadline %g s, retry %g s)",
                 self.where, self.config.identity, self.config.lease_duration,
                 self.config.renew_deadline, self.config.retry_period)
        while self.lost is None:
            try:
                held = await self.attempt()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # never let the elector die silently
                if self.fence.leading:
                    self.lose(f"the elector failed: {type(error).__name__}: {error}")
                    return
                log.warning("leader election attempt failed: %s: %s", type(error).__name__,
                            error)
                held = False
            if self.lost is not None:
                return
            if held and not self.fence.leading:
                await self._started()
            elif not held and self.fence.leading and lease.renew_deadline_passed(
                    self.renewed_at, self.fence.clock(), self.config.renew_deadline):
                self.lose("could not renew the lease within the renew deadline")
                return
            period = self.config.retry_period
            if not self.fence.leading:  # standbys spread their attempts (client-go's)
                period *= random.uniform(1.0, JITTER)
            await asyncio.sleep(period)

    async def _watchdog(self) -> None:
        """Leadership ends when the renew deadline passes, whatever the elector does."""
        period = min(0.5, self.config.retry_period / 4)
        while self.lost is None:
            await asyncio.sleep(period)
            if self.fence.expired():
                late = self.fence.clock() - self.fence.deadline
                self.lose(f"the renew deadline passed {late:.1f} s ago")

    async def release(self) -> bool:
        """Give the lease up (no holder) if it is still ours: a standby takes it at its
        next retry instead of waiting for it to expire."""
        try:
            current = await self._read()
            if current is None or lease.holder(current.get("spec")) != self.config.identity:
                return False
            body = lease.body(self.config.name, self.config.namespace,
                              lease.released_spec(current.get("spec"), self.now()), current)
            async with asyncio.timeout(self.timeout):
                await self.kube.replace(body)
        except CALL_ERRORS as error:
            log.warning("could not release %s: %s", self.where, _describe(error))
            return False
        return True

    def lose(self, why: str) -> None:
        if self.lost is not None:
            return
        self.fence.close(why)  # first: nothing is written from here on
        self.lost = why
        log.error("lost leadership of Lease %s/%s: %s; exiting so that a restart brings a "
                  "fresh cache", self.config.namespace, self.config.name, why)
        timer = threading.Timer(HARD_EXIT_SECONDS, _hard_exit)
        timer.daemon = True
        timer.start()
        self.on_lost(why)

    async def stop(self, release: bool) -> None:
        """Stop electing; with ``release``, give the lease up if held (the fence must be
        closed before, so that nothing is written after the lease is let go). Once."""
        if self.stopped:
            return
        self.stopped = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if release and self.acquired_at is not None:
            assert not self.fence.is_open(), "close the fence before releasing the lease"
            if await self.release():
                log.info("released %s", self.where)


def _describe(error: BaseException) -> str:
    if isinstance(error, ApiError):
        return str(error)
    return f"no answer ({type(error).__name__})"


def _hard_exit() -> None:
    sys.stderr.write("shard-operator: leadership lost and the graceful stop took over "
                     f"{HARD_EXIT_SECONDS:g} s: exiting\n")
    sys.stderr.flush()
    os._exit(EXIT_LOST_LEADERSHIP)
