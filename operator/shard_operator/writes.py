"""The controller's write layer (as the StatefulSet controller's ``StatefulPodControl``):
every write a pass makes goes through :meth:`Writes.send`, which makes the call, counts
it in ``shard_operator_api_writes_total`` and records the answer in the cache at once
(so a watch event still in flight cannot roll the cache back and trigger the same write
again), after the write fence (:mod:`.fence`: no write without a fresh lease). The
verbs on top say which refusals are expected (a 404 on a delete, a 409 on a
create) and word the others for the status; ``bounded`` runs a pass's calls with a
shared concurrency limit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from . import conditions, metrics, pass_trace
from .cache import Cache
from .fence import FENCE
from .kube import ApiError, Kube

log = logging.getLogger("shard_operator.controller")

CONFLICT_IGNORE = "ignore"  # exists, not cached yet: its watch event brings a new pass
CONFLICT_READ = "read"  # exists: read it into the cache and go on with it


class Writes:
    def __init__(self, kube: Kube, cache: Cache, *, concurrency: int = 48) -> None:
        self.kube = kube
        self.cache = cache
        self.concurrency = concurrency
        self.limit = asyncio.Semaphore(concurrency)

    async def send(self, kind: str, verb: str, namespace: str,
                   call: Callable[[], Awaitable[dict[str, Any] | None]]) -> Any:
        """One write: ``call``, its metric, and its answer (if any) into the cache; the
        cached view. Raises what ``call`` raises, or :class:`~.fence.Fenced` without
        calling it when this replica may not write."""
        FENCE.check(kind, verb)
        answer = await call()
        metrics.API_WRITES.labels(kind, verb).inc()
        pass_trace.wrote(kind, verb)
        return None if answer is None else self.cache.put(kind, namespace, answer)

    async def _attempt(self, kind: str, verb: str, namespace: str, what: str,
                       call: Callable[[], Awaitable[dict[str, Any] | None]],
                       errors: list[str], *, missing_ok: bool,
                       on_conflict: Callable[[], Awaitable[Any]] | None = None,
                       invalid: list[str] | None = None) -> Any:
        """:meth:`send`, with a refusal worded as ``"<what>: <message>"`` into ``errors``
        (None returned), but for a 404 when ``missing_ok``, a 409 that ``on_conflict``
        handles and a 422 (the object is invalid) that goes to ``invalid`` if given."""
        try:
            return await self.send(kind, verb, namespace, call)
        except ApiError as error:
            if error.not_found and missing_ok:
                return None
            if error.conflict and on_conflict is not None:
                return await on_conflict()
            (invalid if error.invalid and invalid is not None else errors).append(
                f"{what}: {error.message}")
            return None

    async def create(self, body: dict[str, Any], errors: list[str], *,
                     conflict: str, invalid: list[str] | None = None) -> Any:
        """Create ``body``; on a conflict, ``CONFLICT_READ`` reads the existing object
        into the cache and returns it, ``CONFLICT_IGNORE`` returns None; a 422 goes to
        ``invalid`` when given (else to ``errors``)."""
        kind, meta = body["kind"], body["metadata"]
        namespace, name = meta["namespace"], meta["name"]

        async def read() -> Any:
            return self.cache.put(kind, namespace, await self.kube.get(kind, namespace, name))

        async def ignore() -> None:
            return None

        what = (f"creating {kind} {name}" if conflict == CONFLICT_READ
                else f"creating {kind} {name} was refused")
        return await self._attempt(kind, "create", namespace, what,
                                   lambda: self.kube.create(body), errors, missing_ok=False,
                                   on_conflict=read if conflict == CONFLICT_READ else ignore,
                                   invalid=invalid)

    async def patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any],
                    errors: list[str]) -> Any:
        """Restore what drifted; None if the object is gone or the patch was refused."""
        return await self._attempt(kind, "patch", namespace, f"restoring {kind} {name}",
                                   lambda: self.kube.patch(kind, namespace, name, patch),
                                   errors, missing_ok=True)

    async def patch_status(self, kind: str, namespace: str, name: str,
                           status: dict[str, Any], errors: list[str]) -> Any:
        return await self._attempt(kind, "patch-status", namespace,
                                   f"writing the status of {kind} {name}",
                                   lambda: self.kube.patch_status(kind, namespace, name, status),
                                   errors, missing_ok=True)

    async def delete(self, kind: str, namespace: str, view: Any, errors: list[str]) -> None:
        """Delete that incarnation (``view.uid``); one already gone is fine."""
        await self._attempt(kind, "delete", namespace, f"deleting {kind} {view.name}",
                            lambda: self.kube.delete(kind, namespace, view.name, uid=view.uid),
                            errors, missing_ok=True)

    async def read(self, kind: str, namespace: str, name: str) -> Any:
        """Read one object into the cache (after a conflict, when the cache lags)."""
        return self.cache.put(kind, namespace, await self.kube.get(kind, namespace, name))

    async def refused(self, body: dict[str, Any]) -> str | None:
        """Whether the API server would refuse to create ``body`` (a dry run: nothing is
        written): its message, or None if it admits it. A dry run is a POST: fenced too."""
        FENCE.check(body["kind"], "create")
        try:
            await self.kube.create(body, dry_run=True)
        except ApiError as error:
            if error.conflict:  # valid and admitted; only the name is taken
                return None
            return error.message
        return None

    async def event(self, view: Any, kind: str, type_: str, reason: str, note: str) -> None:
        """Post an event on ``view``; a failure is logged, never fails the pass."""
        errors: list[str] = []
        await self._attempt("Event", "create", view.body["metadata"]["namespace"],
                            f"could not post event {reason} on {kind} {view.name}",
                            lambda: self.kube.post_event(view.body, kind, type_, reason, note,
                                                         conditions.now()),
                            errors, missing_ok=False)
        for error in errors:
            log.warning("%s", error)

    async def bounded(self, calls: Iterable[Callable[[], Awaitable[Any]]]) -> list[Any]:
        """Run ``calls`` in order, at most ``concurrency`` at a time across the controller
        (``self.limit``), and return their results in order.

        A few runners take the calls one at a time, each after acquiring a slot, rather
        than a task per call waiting for a slot: with 5,000 shards, the 5,000 waiting
        tasks (task, coroutine, future, context and closure each) held several MB at
        once, and ``calls`` (often a generator) is now only consumed as slots free up.

        The runners run in a ``TaskGroup``: when one call raises, the others are
        cancelled and awaited before this returns (raising that first error), so no call
        of a pass outlives it and two passes over one node id never overlap."""
        pending = enumerate(calls)
        results: dict[int, Any] = {}

        async def runner() -> None:
            while True:
                async with self.limit:
                    try:
                        index, call = next(pending)
                    except StopIteration:
                        return
                    results[index] = await call()

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self.concurrency):
                    group.create_task(runner())
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        return [results[index] for index in range(len(results))]
