"""Leader election on a ``coordination.k8s.io/v1`` Lease (kubernetes_asyncio's
``LeaderElection`` with a ``LeaseLock``), tied to the write fence (:mod:`.fence`).

- Every replica runs kopf's watches and fills its cache; only the leader's controller
  works (its workers wait for the fence to open, see ``Controller.start``).
- Each successful create or update of the Lease by this replica renews the fence from
  the moment the request was *sent*.
- Leadership ends when the elector gives up renewing, when the watchdog finds the renew
  deadline passed (even if the elector's loop is stuck in a request, or the whole
  process was stopped), or when the elector fails while leading. Then the fence closes
  at once, ``on_lost`` stops the operator, and the process exits non-zero
  (:data:`EXIT_LOST_LEADERSHIP`) so that its Deployment restarts it with a fresh cache;
  a hard exit follows if the graceful stop takes too long.
- On a graceful stop (SIGTERM) the leader closes the fence, then releases the Lease
  (empty holder), so that a standby takes over within one retry period.

Fixes over kubernetes_asyncio's ``LeaseLock``: its timestamps are local times labelled
UTC (wrong unless TZ=UTC) and lose their fraction when the microsecond is 0; a
``lease_duration`` given as a float breaks its ``int()``; a connection error or a hung
request escapes or stalls the elector; a lost race logs a traceback. Here times are
always UTC with microseconds, requests have a timeout and every failure is one failed
attempt.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.leaderelection.electionconfig import Config
from kubernetes_asyncio.leaderelection.leaderelection import LeaderElection
from kubernetes_asyncio.leaderelection.leaderelectionrecord import LeaderElectionRecord
from kubernetes_asyncio.leaderelection.resourcelock.leaselock import LeaseLock

from .election import ElectionConfig
from .fence import Fence
from .kube import TRANSPORT_ERRORS

log = logging.getLogger("shard_operator.leader")

EXIT_LOST_LEADERSHIP = 3
HARD_EXIT_SECONDS = 10.0  # after leadership is lost, the longest graceful stop


def micro_time(moment: datetime | None = None) -> str:
    """A Kubernetes MicroTime: UTC, always six fractional digits."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _failed(status: int, reason: str) -> ApiException:
    """A failed read in the shape the elector expects (it reads ``body["code"]``)."""
    error = ApiException(status=status, reason=reason)
    error.body = json.dumps({"code": status, "message": reason}).encode()
    return error


class FencedLeaseLock(LeaseLock):
    """A LeaseLock whose successful writes of our own record renew the fence."""

    def __init__(self, name: str, namespace: str, identity: str, api_client: client.ApiClient,
                 fence: Fence, timeout: float) -> None:
        super().__init__(name, namespace, identity, api_client)
        self.fence, self.timeout = fence, timeout

    async def get(self, name: str, namespace: str) -> Any:
        try:
            async with asyncio.timeout(self.timeout):
                lease = await self.api_instance.read_namespaced_lease(name, namespace)
        except ApiException as error:
            return False, error
        except TRANSPORT_ERRORS as error:
            log.warning("reading Lease %s/%s: %s", namespace, name, type(error).__name__)
            return False, _failed(0, f"no answer: {type(error).__name__}")
        self.lease_reference = lease
        return True, self.election_record(lease)

    async def create(self, name: str, namespace: str,
                     election_record: LeaderElectionRecord) -> bool:
        body = client.V1Lease(metadata=client.V1ObjectMeta(name=name),
                              spec=self.update_lease(election_record))
        return await self._write(election_record, lambda: self.api_instance.create_namespaced_lease(
            namespace, body), f"creating Lease {namespace}/{name}")

    async def update(self, name: str, namespace: str,
                     updated_record: LeaderElectionRecord) -> bool:
        if self.lease_reference is None:
            return False
        self.lease_reference.spec = self.update_lease(updated_record, self.lease_reference.spec)
        body = self.lease_reference
        return await self._write(updated_record, lambda: self.api_instance.replace_namespaced_lease(
            name=name, namespace=namespace, body=body), f"updating Lease {namespace}/{name}")

    async def _write(self, record: LeaderElectionRecord, call: Callable[[], Any],
                     what: str) -> bool:
        started = self.fence.clock()
        try:
            async with asyncio.timeout(self.timeout):
                answer = await call()
        except ApiException as error:
            # 409: another replica wrote first (its resourceVersion won): not ours.
            log.log(logging.DEBUG if error.status == 409 else logging.WARNING,
                    "%s: %s %s", what, error.status, error.reason)
            return False
        except TRANSPORT_ERRORS as error:
            log.warning("%s: no answer (%s)", what, type(error).__name__)
            return False
        if isinstance(answer, client.V1Lease):
            self.lease_reference = answer
        if record.holder_identity == self.identity:
            self.fence.renewed(started)
        return True

    def update_lease(self, leader_election_record: LeaderElectionRecord,
                     current_spec: client.V1LeaseSpec | None = None) -> client.V1LeaseSpec:
        """The Lease spec for ``leader_election_record``, with times taken now in UTC (the
        record's own are local times) and the holder's acquire time kept across renewals."""
        # (times as strings: the client would write a datetime without its fraction
        # when the microsecond is 0, which a MicroTime refuses)
        spec: Any = current_spec if current_spec else client.V1LeaseSpec()
        holder = leader_election_record.holder_identity
        now = micro_time()
        if spec.holder_identity != holder or not spec.acquire_time:
            if spec.holder_identity and spec.holder_identity != holder:
                spec.lease_transitions = (spec.lease_transitions or 0) + 1
            spec.acquire_time = now
        elif isinstance(spec.acquire_time, datetime):
            spec.acquire_time = micro_time(spec.acquire_time)
        spec.holder_identity = holder
        spec.lease_duration_seconds = int(float(leader_election_record.lease_duration or 1))
        spec.renew_time = now
        return spec

    async def release(self) -> bool:
        """Give the lease up (empty holder) if it is still ours: a standby takes it at
        its next retry instead of waiting for it to expire."""
        found, record = await self.get(self.name, self.namespace)
        if not found or not isinstance(record, LeaderElectionRecord) or \
                record.holder_identity != self.identity or self.lease_reference is None:
            return False
        spec: Any = self.lease_reference.spec
        now = micro_time()
        spec.holder_identity, spec.lease_duration_seconds = None, 1
        spec.acquire_time, spec.renew_time = now, now
        try:
            async with asyncio.timeout(self.timeout):
                await self.api_instance.replace_namespaced_lease(
                    name=self.name, namespace=self.namespace, body=self.lease_reference)
        except ApiException as error:
            log.warning("could not release Lease %s/%s: %s", self.namespace, self.name, error)
            return False
        except TRANSPORT_ERRORS as error:
            log.warning("could not release Lease %s/%s: %r", self.namespace, self.name, error)
            return False
        return True


class Leader:
    """Runs the election of one process; ``on_lost`` is called once when leadership
    ends (the fence is already closed then)."""

    def __init__(self, config: ElectionConfig, fence: Fence, api: client.ApiClient,
                 on_lost: Callable[[str], None]) -> None:
        self.config, self.fence, self.api, self.on_lost = config, fence, api, on_lost
        self.lock = FencedLeaseLock(config.name, config.namespace, config.identity, api, fence,
                                    timeout=max(1.0, config.renew_deadline / 2))
        self.lost: str | None = None
        self.acquired_at: float | None = None
        self.stopped = False
        self._tasks: list[asyncio.Task[None]] = []
        fence.arm(config.renew_deadline)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._elect(), name="leader-election"),
                       asyncio.create_task(self._watchdog(), name="leader-watchdog")]

    async def _started(self) -> None:
        self.fence.lead()
        self.acquired_at = time.monotonic()
        log.info("leading: holding Lease %s/%s as %s", self.config.namespace, self.config.name,
                 self.config.identity)

    async def _stopped(self) -> None:
        self.lose("could not renew the lease within the renew deadline")

    async def _elect(self) -> None:
        election = LeaderElection(Config(
            self.lock, lease_duration=self.config.lease_duration,
            renew_deadline=self.config.renew_deadline, retry_period=self.config.retry_period,
            onstarted_leading=self._started, onstopped_leading=self._stopped))
        log.info("waiting for Lease %s/%s as %s (lease %g s, renew deadline %g s, retry %g s)",
                 self.config.namespace, self.config.name, self.config.identity,
                 self.config.lease_duration, self.config.renew_deadline,
                 self.config.retry_period)
        while self.lost is None:
            try:
                await election.run()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the elector is not ours: never let it die silently
                if self.fence.leading:
                    self.lose(f"the elector failed: {type(error).__name__}: {error}")
                    return
                log.warning("leader election attempt failed: %s: %s", type(error).__name__,
                            error)
                await asyncio.sleep(self.config.retry_period)
            else:
                return  # it returns only after leading and losing (see _stopped)

    async def _watchdog(self) -> None:
        """Leadership ends when the renew deadline passes, whatever the elector does."""
        period = min(0.5, self.config.retry_period / 4)
        while self.lost is None:
            await asyncio.sleep(period)
            if self.fence.expired():
                late = self.fence.clock() - self.fence.deadline
                self.lose(f"the renew deadline passed {late:.1f} s ago")

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
            if await self.lock.release():
                log.info("released Lease %s/%s", self.config.namespace, self.config.name)


def _hard_exit() -> None:
    sys.stderr.write("shard-operator: leadership lost and the graceful stop took over "
                     f"{HARD_EXIT_SECONDS:g} s: exiting\n")
    sys.stderr.flush()
    os._exit(EXIT_LOST_LEADERSHIP)
