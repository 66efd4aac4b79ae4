"""Step 3: the key map lists every shard whose Pod and Service exist, as long as it
fits; a transient write failure is retried, only a lasting refusal is terminal.

While a pass makes workloads, :class:`Slices` already lists the shards whose Pod and
Service it has made, a slice at a time (when :data:`~..decisions.KEY_MAP_SLICE_ENTRIES`
are due or the first has waited :data:`~..decisions.KEY_MAP_SLICE_SECONDS`), so that a
shard is found by clients about when its Pod is Ready rather than when the last of
thousands is made. ``ensure``, at the end of the pass, writes the whole map as before
(and nothing when the slices already did)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from .. import pass_trace, render
from ..cache import ShardSetView, ShardView
from ..decisions import (
    KEY_MAP_SLICE_ENTRIES,
    KEY_MAP_SLICE_SECONDS,
    Pass,
    key_map_differs,
    key_map_slice,
    plan_key_map,
    slice_wait,
    still_listed,
)
from ..keys import Key, key_map_name, key_to_json
from ..kube import CALL_ERRORS, ApiError, Kube, transient
from ..reasons import KEY_MAP_PENDING, KEY_MAP_UPDATE_FAILED
from ..writes import Writes

log = logging.getLogger("shard_operator.controller")


class Slices:
    """Key map entries written during a pass, as the shards' workloads are made: call
    :meth:`made` for each shard once its Pod and Service exist, and :meth:`close` before
    the pass's own key map write. A slice only adds entries (:func:`key_map_slice`); a
    failed slice is left to that final write, which reports and retries as before."""

    entries = KEY_MAP_SLICE_ENTRIES
    seconds = KEY_MAP_SLICE_SECONDS

    def __init__(self, writes: Writes, namespace: str, owner: ShardSetView, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.writes, self.namespace, self.owner, self.clock = writes, namespace, owner, clock
        self.name = key_map_name(owner.node_id)
        self.due: list[tuple[str, Key]] = []
        self.first_due_at: float | None = None
        self.written = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def _listed(self) -> dict[str, str]:
        current = self.writes.cache.get("ConfigMap", self.namespace, self.name)
        return current.data if current is not None else {}

    def made(self, shard: ShardView) -> None:
        """``shard``'s Pod and Service exist now: list it soon, if it is not yet."""
        if shard.key is None or self._listed().get(shard.name) == key_to_json(shard.key):
            return
        self.due.append((shard.name, shard.key))
        if self.first_due_at is None:
            self.first_due_at = self.clock()
        if self._task is None and not self._closing:
            self._task = asyncio.create_task(self._run(), name=f"key-map-slices-{self.name}")
        self._wake.set()

    async def _run(self) -> None:
        while not self._closing:
            wait = slice_wait(len(self.due), self.first_due_at, self.clock(),
                              entries=self.entries, seconds=self.seconds)
            if wait is None or wait > 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except TimeoutError:
                    pass
                continue
            due, self.due, self.first_due_at = self.due, [], None
            await self._write(due)

    async def _write(self, due: list[tuple[str, Key]]) -> None:
        current = self.writes.cache.get("ConfigMap", self.namespace, self.name)
        if current is not None and self.owner.uid not in current.owners:
            return  # not this ShardSet's map (yet): the pass's own write sets it right
        data = key_map_slice(current.data if current is not None else {},
                             sorted(due), self.owner.node_id, self.namespace)
        if data is None:
            return
        desired = render.key_map(self.name, self.namespace, data, self.owner.body)
        kube: Kube = self.writes.kube
        try:
            if current is None:
                await self.writes.send("ConfigMap", "create", self.namespace,
                                       lambda: kube.create(desired))
            else:
                await self.writes.send("ConfigMap", "replace", self.namespace,
                                       lambda: kube.replace(desired))
        except CALL_ERRORS as error:  # the pass's own write retries and reports
            log.debug("key map slice of %s not written: %s", self.name, error)
            return
        self.written += 1
        pass_trace.note("key_map_slices", 1)

    async def close(self) -> None:
        """Stop writing slices, after the one being written if any (what is still due
        goes in the pass's own write, which then sees this one in the cache)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            task, self._task = self._task, None
            try:
                await task
            except BaseException:
                task.cancel()
                raise


async def ensure(writes: Writes, namespace: str, owner: ShardSetView,
                 shards: list[ShardView], run: Pass) -> None:
    name = key_map_name(owner.node_id)
    plan = plan_key_map(owner.node_id, namespace, shards, run.outcomes)
    run.unregistered_reason.update(plan.unregistered)
    desired = render.key_map(name, namespace, plan.data, owner.body)
    current = writes.cache.get("ConfigMap", namespace, name)
    kube: Kube = writes.kube
    try:
        if current is None:
            await writes.send("ConfigMap", "create", namespace, lambda: kube.create(desired))
        elif key_map_differs(current, desired, owner.uid):
            await writes.send("ConfigMap", "replace", namespace, lambda: kube.replace(desired))
    except CALL_ERRORS as error:
        message = error.message if isinstance(error, ApiError) else (
            f"{type(error).__name__}: {error}")
        if isinstance(error, ApiError) and error.conflict and current is None:
            # Created meanwhile (or the cache lags): read it and retry next pass.
            await writes.read("ConfigMap", namespace, name)
        # What the map still lists stays registered; only the shards this write was
        # adding are concerned, and only a refusal that a retry cannot fix is terminal.
        run.registered = still_listed(plan, current.data if current is not None else {})
        if transient(error):
            run.retry.append(f"key map {name} not written yet: {message}")
            reason = (KEY_MAP_PENDING, f"the key map write is retried: {message}")
        else:
            run.errors.append(f"key map update failed: {message}")
            reason = (KEY_MAP_UPDATE_FAILED, message)
        for shard_name in plan.entries.keys() - run.registered:
            run.unregistered_reason[shard_name] = reason
        return
    run.registered = set(plan.entries)
