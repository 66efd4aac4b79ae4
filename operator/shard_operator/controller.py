"""The level-triggered reconcile of one node id: its ShardSet, Shards, Pods, Services
and key map, from the cache, with only the writes needed to close the gap.

Watch events enqueue ``(namespace, nodeId)``; a key enqueued while it is being
reconciled runs once more afterwards, so bursts of events collapse into few passes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import conditions, keymap, metrics, render
from .cache import Cache, PodView, ServiceView, ShardSetView, ShardView
from .constants import (
    ANNOTATION_KEY,
    KEY_MAP_MAX_BYTES,
    LABEL_MANAGED_BY,
    LABEL_NODE_ID,
    LABEL_SHARD,
    ORIGIN_SCHEMA,
    SHARD_PORT,
)
from .failing import is_failing, recheck_after
from .keys import Key, key_map_name, key_to_json, shard_name
from .kube import TRANSPORT_ERRORS, ApiError, Kube, transient
from .reasons import (
    CRASH_LOOP,
    INVALID_KEY,
    INVALID_SCHEMA,
    KEY_MAP_FULL,
    KEY_MAP_PENDING,
    KEY_MAP_UPDATE_FAILED,
    NAME_NOT_DERIVED,
    NO_SHARD_SET,
    NODE_ID_CONFLICT,
    RECONCILE_ERROR,
    REGISTERED,
    WORKLOAD_MISSING,
)

log = logging.getLogger("shard_operator.controller")
NodeKey = tuple[str, str]  # (namespace, nodeId)
RESTARTING_LIST_MAX = 50
PROBLEMS_LISTED_MAX = 20
PAUSE_MAX_SECONDS = 5.0


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

    def add(self, key: NodeKey) -> None:
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

    async def get(self) -> NodeKey:
        key = await self._queue.get()
        self._queued.discard(key)
        self._active.add(key)
        return key

    def done(self, key: NodeKey, pause: float = 0.0) -> None:
        """Finish a pass; the next one starts ``pause`` seconds later at the earliest."""
        self._active.discard(key)
        if pause > 0:
            self._not_before[key] = time.monotonic() + pause
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def idle(self) -> bool:
        return not (self._queued or self._active or self._paused)


@dataclass
class ShardOutcome:
    """What one pass found for one Shard."""

    pod: PodView | None = None
    service: ServiceView | None = None
    error: str = ""  # why its Pod or Service could not be made
    outdated: bool = False
    replacement: dict[str, Any] | None = None  # the Pod to roll to, when outdated
    pod_event_due: bool = False  # its Pod was just created: a watch event brings a new pass


@dataclass
class Pass:
    """Everything one reconcile learns, for the status it writes at the end."""

    problems: list[str] = field(default_factory=list)  # what makes the generation invalid
    errors: list[str] = field(default_factory=list)  # failed writes, shown in status
    retry: list[str] = field(default_factory=list)  # transient failures: retried, logged
    outcomes: dict[str, ShardOutcome] = field(default_factory=dict)
    registered: set[str] = field(default_factory=set)
    unregistered_reason: dict[str, tuple[str, str]] = field(default_factory=dict)


class Controller:
    def __init__(self, kube: Kube, cache: Cache, *, workers: int = 2, concurrency: int = 48,
                 resync_seconds: float = 300.0) -> None:
        self.kube = kube
        self.cache = cache
        self.queue = WorkQueue()
        self.workers = workers
        self.concurrency = concurrency
        self.limit = asyncio.Semaphore(concurrency)
        self.resync_seconds = resync_seconds
        self._tasks: list[asyncio.Task] = []
        self._failures: dict[NodeKey, int] = {}

    # ----- running ---------------------------------------------------------------------

    def start(self, wait_for_sync: bool = True) -> None:
        """Start the workers; with ``wait_for_sync`` they begin once the cache is synced
        (see ``Cache.expect``)."""
        self._synced = asyncio.Event()

        async def sync() -> None:
            if wait_for_sync:
                await self.wait_until_synced()
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
        to a minute (a standby replica, whose watches kopf keeps paused, waits here at the
        cost of a few reads a minute)."""
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
            started, cpu = time.monotonic(), time.process_time()
            try:
                reasons = await self.reconcile(*key)
                retry = bool(reasons)
                if retry:
                    log.warning("reconcile of %s/%s is retried: %s", *key, "; ".join(reasons[:3]))
                else:
                    self._failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconcile of %s/%s failed", *key)
                retry = True
            finally:
                metrics.RECONCILES.labels("ShardSet").inc()
                elapsed = time.monotonic() - started
                metrics.RECONCILE_SECONDS.labels("ShardSet").observe(elapsed)
                # A pass costs O(shards) of CPU: events arriving meanwhile are batched into
                # the next one, which waits as long as this one kept the CPU busy (at most
                # PAUSE_MAX_SECONDS), so that watch events are not starved of the event loop
                # at 10,000 shards; time spent waiting on the API server does not count.
                busy = time.process_time() - cpu
                self.queue.done(key, pause=min(busy, elapsed, PAUSE_MAX_SECONDS))
            if retry:
                metrics.RECONCILE_ERRORS.labels("ShardSet").inc()
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                self.queue.add_after(key, min(30.0, 0.5 * 2 ** min(failures, 6)))

    async def _bounded(self, calls: Iterable[Callable[[], Awaitable[Any]]]) -> list[Any]:
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

    # ----- one node id -----------------------------------------------------------------

    async def reconcile(self, namespace: str, node_id: str) -> list[str]:
        """Converge one node id; returns why it should be retried (empty: it need not be).

        A generation with any problem (``render.schema_shards``, a hash collision)
        applies nothing new: no Shard is created or deleted for it, while the existing
        shards keep their Pods, Services and key map entries."""
        sets = [s for s in self.cache.shardsets(namespace, node_id) if not s.deleting]
        shards = [s for s in self.cache.shards(namespace, node_id) if not s.deleting]
        run = Pass()
        if not sets:
            await self._status_without_owner(namespace, shards, run)
            return run.errors + run.retry
        owner, others = sets[0], sets[1:]
        for other in others:
            await self._refuse_duplicate(other, owner, run)
        shards, refused = _split_refused(shards)
        await self._refuse_shards(namespace, refused, run)
        wanted, run.problems = render.schema_shards(owner.body, namespace)
        shards = await self._ensure_shards(namespace, owner, wanted, shards, run)
        await self._ensure_workloads(namespace, owner, shards, run)
        await self._ensure_key_map(namespace, owner, shards, run)
        await self._write_shard_statuses(namespace, shards, run)
        await self._write_owner_status(namespace, owner, shards, run)
        return run.errors + run.retry

    async def _ensure_shards(self, namespace: str, owner: ShardSetView,
                             wanted: dict[str, tuple[Key, dict[str, Any]]],
                             shards: list[ShardView], run: Pass) -> list[ShardView]:
        existing = {s.name: s for s in shards}
        missing = []
        for name, (key, body) in wanted.items():
            have = existing.get(name)
            if have is None:
                if self.cache.get("Shard", namespace, name) is None:
                    missing.append(body)
            elif have.key is not None and have.key != key:
                run.problems.append(
                    f"key {key_to_json(key)} hashes to the name of Shard {name}, which holds "
                    f"key {key_to_json(have.key)}: hash collision, not merged")
        if run.problems:  # an invalid generation applies nothing new
            return [existing[name] for name in sorted(existing)]
        created = await self._bounded(
            lambda body=body: self._create_custom("Shard", namespace, body, run)
            for body in missing)
        for view in created:
            if view is not None:
                existing[view.name] = view
        if owner.spec.get("removedKeyPolicy") == "Delete":
            stale = [s for s in existing.values()
                     if s.origin == ORIGIN_SCHEMA and owner.uid in s.owners
                     and s.name not in wanted]
            await self._bounded(
                lambda s=s: self._delete_custom("Shard", namespace, s, run) for s in stale)
            for view in stale:
                existing.pop(view.name, None)
        return [existing[name] for name in sorted(existing)]

    async def _ensure_workloads(self, namespace: str, owner: ShardSetView,
                                shards: list[ShardView], run: Pass) -> None:
        template = owner.spec.get("template")
        calls = [lambda s=s: self._ensure_workload(namespace, s, template, run)
                 for s in shards if s.key is not None]
        await self._bounded(calls)
        # Roll pods whose template changed, a quarter of the shards at a time.
        outdated = [name for name, o in run.outcomes.items() if o.outdated]
        if outdated and await self._replacement_refused(run.outcomes[outdated[0]], run):
            return
        if outdated:
            unavailable = sum(1 for o in run.outcomes.values()
                              if o.pod is None or not o.pod.ready)
            budget = max(1, len(run.outcomes) // 4) - unavailable
            victims = sorted(outdated, key=lambda n: run.outcomes[n].pod.ready)[:max(0, budget)]
            await self._bounded(
                lambda n=n: self._delete_core("Pod", namespace, run.outcomes[n].pod, run)
                for n in victims)

    async def _ensure_workload(self, namespace: str, shard: ShardView,
                               template: dict[str, Any] | None, run: Pass) -> None:
        """The Service and the Pod of one Shard, made or restored side by side."""
        outcome = run.outcomes.setdefault(shard.name, ShardOutcome())
        assert shard.key is not None
        full = {"metadata": {**shard.body["metadata"]}, "spec": shard.body["spec"]}
        await asyncio.gather(self._ensure_service(namespace, shard, full, run, outcome),
                             self._ensure_pod(namespace, shard, full, template, run, outcome))

    async def _ensure_service(self, namespace: str, shard: ShardView, full: dict[str, Any],
                              run: Pass, outcome: ShardOutcome) -> None:
        assert shard.key is not None
        desired_service = render.service(full, shard.key)
        service = self.cache.get("Service", namespace, shard.name)
        if service is None:
            service = await self._create_core(desired_service, run, outcome)
        elif not service.deleting:
            patch = _metadata_patch(service, desired_service, shard.uid)
            if service.selector != desired_service["spec"]["selector"] or not _ports_match(
                    service.ports):
                patch.setdefault("spec", {}).update(
                    {"selector": desired_service["spec"]["selector"],
                     "ports": desired_service["spec"]["ports"]})
            if patch:
                service = await self._patch_core("Service", namespace, shard.name, patch, run)
        outcome.service = service if service is not None and not service.deleting else None

    async def _ensure_pod(self, namespace: str, shard: ShardView, full: dict[str, Any],
                          template: dict[str, Any] | None, run: Pass,
                          outcome: ShardOutcome) -> None:
        assert shard.key is not None
        desired_pod = render.pod(full, shard.key, template)
        pod = self.cache.get("Pod", namespace, shard.name)
        if pod is None:
            pod = await self._create_core(desired_pod, run, outcome)
            outcome.pod_event_due = not outcome.error
        elif not pod.deleting:
            patch = _metadata_patch(pod, desired_pod, shard.uid)
            if patch:
                pod = await self._patch_core("Pod", namespace, shard.name, patch, run) or pod
            desired_hash = desired_pod["metadata"]["annotations"][render.ANNOTATION_TEMPLATE_HASH]
            outcome.outdated = pod.template_hash != desired_hash
            outcome.replacement = desired_pod if outcome.outdated else None
        outcome.pod = pod if pod is not None and not pod.deleting else None

    async def _replacement_refused(self, outcome: ShardOutcome, run: Pass) -> bool:
        """Ask the API server (dry run) whether it admits a Pod of the new template, so that
        a template it refuses never takes down running Pods."""
        assert outcome.replacement is not None
        try:
            await self.kube.create(outcome.replacement, dry_run=True)
        except ApiError as error:
            if error.conflict:  # valid and admitted; only the name is taken (by the old Pod)
                return False
            run.errors.append("the new pod template is refused by the API server, running "
                              f"pods are kept: {error.message}")
            return True
        return False

    async def _ensure_key_map(self, namespace: str, owner: ShardSetView,
                              shards: list[ShardView], run: Pass) -> None:
        name = key_map_name(owner.node_id)
        entries: dict[str, Key] = {}
        size = keymap.data_size(keymap.render(owner.node_id, namespace, {}))
        for shard in sorted(shards, key=lambda s: (s.created, s.name)):
            outcome = run.outcomes.get(shard.name)
            if shard.key is None:
                run.unregistered_reason[shard.name] = (INVALID_KEY, "the key cannot be decoded")
                continue
            if outcome is None or outcome.pod is None or outcome.service is None:
                run.unregistered_reason[shard.name] = (
                    WORKLOAD_MISSING, outcome.error if outcome and outcome.error
                    else "waiting for its Pod and Service")
                continue
            added = keymap.entry_size(shard.name, shard.key)
            if size + added > KEY_MAP_MAX_BYTES:
                run.unregistered_reason[shard.name] = (
                    KEY_MAP_FULL, f"the key map {name} would exceed {KEY_MAP_MAX_BYTES} bytes")
                continue
            size += added
            entries[shard.name] = shard.key
        data = keymap.render(owner.node_id, namespace, entries)
        desired = render.key_map(name, namespace, data, owner.body)
        current = self.cache.get("ConfigMap", namespace, name)
        try:
            if current is None:
                created = await self.kube.create(desired)
                metrics.API_WRITES.labels("ConfigMap", "create").inc()
                self.cache.put("ConfigMap", namespace, created)
            elif current.data != data or owner.uid not in current.owners or any(
                    current.labels.get(k) != v for k, v in desired["metadata"]["labels"].items()):
                replaced = await self.kube.replace_config_map(desired)
                metrics.API_WRITES.labels("ConfigMap", "update").inc()
                self.cache.put("ConfigMap", namespace, replaced)
        except (ApiError, *TRANSPORT_ERRORS) as error:
            message = error.message if isinstance(error, ApiError) else (
                f"{type(error).__name__}: {error}")
            if isinstance(error, ApiError) and error.conflict and current is None:
                # Created meanwhile (or the cache lags): read it and retry next pass.
                self.cache.put("ConfigMap", namespace,
                               await self.kube.get_config_map(namespace, name))
            # What the map still lists stays registered; only the shards this write was
            # adding are concerned, and only a refusal that a retry cannot fix is terminal.
            listed = current.data if current is not None else {}
            run.registered = {n for n in entries if listed.get(n) == data[n]}
            if transient(error):
                run.retry.append(f"key map {name} not written yet: {message}")
                reason = (KEY_MAP_PENDING, f"the key map write is retried: {message}")
            else:
                run.errors.append(f"key map update failed: {message}")
                reason = (KEY_MAP_UPDATE_FAILED, message)
            for shard_name in entries.keys() - run.registered:
                run.unregistered_reason[shard_name] = reason
            return
        run.registered = set(entries)

    # ----- status ----------------------------------------------------------------------

    async def _write_shard_statuses(self, namespace: str, shards: list[ShardView], run: Pass
                                    ) -> None:
        """Patch the status of each Shard whose status differs from what was observed.

        A schema Shard whose Pod this pass has just created is left for the pass its
        Pod's watch events bring: its status would say "Pending" only to be rewritten a
        moment later (at 1,000 shards that is 1,000 writes saved while converging). A
        started Shard's status is written at once: ``start_shard`` waits for it to say
        ``registered``, and waiting for the Pod's events doubled its latency."""
        calls = []
        for shard in shards:
            outcome = run.outcomes.get(shard.name)
            if outcome is not None and outcome.pod_event_due and shard.origin == ORIGIN_SCHEMA:
                continue
            status = _shard_status(shard, run, namespace)
            if _status_differs(shard.status, status):
                status["conditions"] = conditions.merge(shard.status.get("conditions"),
                                                        status["conditions"])
                calls.append(lambda s=shard, st=status: self._patch_status("Shard", namespace,
                                                                           s, st, run))
        await self._bounded(calls)

    async def _write_owner_status(self, namespace: str, owner: ShardSetView,
                                  shards: list[ShardView], run: Pass) -> None:
        status = _shardset_status(owner, shards, run, namespace)
        pods = [o.pod for o in run.outcomes.values() if o.pod is not None]
        recheck = recheck_after(pods, time.time())
        if recheck is not None:  # Degraded may clear then, with no event to say so
            self.queue.add_after((namespace, owner.node_id), recheck)
        metrics.SHARDS.labels(namespace, owner.name, "desired").set(status["desiredShards"])
        metrics.SHARDS.labels(namespace, owner.name, "registered").set(
            status["registeredShards"])
        metrics.SHARDS.labels(namespace, owner.name, "ready").set(status["readyShards"])
        if not _status_differs(owner.status, status):
            return
        previous = owner.status.get("conditions")
        status["conditions"] = conditions.merge(previous, status["conditions"])
        await self._patch_status("ShardSet", namespace, owner, status, run)
        # One event per change a user must know of: a new failure (with its cause), else
        # a change of readiness.
        degraded = _transition(previous, status["conditions"], "Degraded")
        ready = _transition(previous, status["conditions"], "Ready")
        if degraded and degraded["status"] == "True":
            await self._event(owner, "ShardSet", "Warning", degraded["reason"],
                              degraded["message"])
        elif ready:
            kind = "Normal" if ready["status"] == "True" or ready["reason"] == "Progressing" \
                else "Warning"
            await self._event(owner, "ShardSet", kind, ready["reason"], ready["message"])

    async def _refuse_duplicate(self, other: ShardSetView, owner: ShardSetView, run: Pass
                                ) -> None:
        """A second ShardSet for a taken node id: refused in its status, nothing touched.
        A failed status write is retried (``run.retry``) and logged by the worker."""
        message = (f"nodeId {other.node_id!r} is already used by ShardSet {owner.name} in "
                   "this namespace; this ShardSet is ignored until that one is deleted")
        cond = [conditions.condition("Ready", False, NODE_ID_CONFLICT, message, other.generation),
                conditions.condition("Progressing", False, NODE_ID_CONFLICT, message,
                                     other.generation),
                conditions.condition("Degraded", True, NODE_ID_CONFLICT, message,
                                     other.generation)]
        status = {"observedGeneration": other.generation, "nodeId": other.node_id,
                  "desiredShards": 0, "registeredShards": 0, "readyShards": 0,
                  "conditions": cond}
        if _status_differs(other.status, status):
            status["conditions"] = conditions.merge(other.status.get("conditions"), cond)
            namespace = other.body["metadata"]["namespace"]
            failed = Pass()
            await self._patch_status("ShardSet", namespace, other, status, failed)
            if failed.errors:
                run.retry.extend(failed.errors)
                return
            await self._event(other, "ShardSet", "Warning", NODE_ID_CONFLICT, message)

    async def _refuse_shards(self, namespace: str, refused: list[ShardView], run: Pass
                             ) -> None:
        """Shards made by hand under another name than ``<nodeId>-<hash of the key>``:
        refused in their status (once, with a Warning event), never given a Pod, a
        Service or a key map entry. Adopting one would let two Shards hold one key."""
        for shard in refused:
            status = _refused_status(shard, namespace)
            if not _status_differs(shard.status, status):
                continue
            status["conditions"] = conditions.merge(shard.status.get("conditions"),
                                                    status["conditions"])
            failed = Pass()
            await self._patch_status("Shard", namespace, shard, status, failed)
            run.errors.extend(failed.errors)
            if not failed.errors:
                await self._event(shard, "Shard", "Warning", NAME_NOT_DERIVED,
                                  status["conditions"][0]["message"])

    async def _status_without_owner(self, namespace: str, shards: list[ShardView], run: Pass
                                    ) -> None:
        for shard in shards:
            run.unregistered_reason[shard.name] = (
                NO_SHARD_SET, f"no ShardSet with nodeId {shard.node_id!r} in this namespace")
        await self._write_shard_statuses(namespace, shards, run)

    # ----- API calls that keep the cache current ---------------------------------------

    async def _create_custom(self, kind: str, namespace: str, body: dict[str, Any], run: Pass
                             ) -> Any:
        try:
            created = await self.kube.create_custom(kind, body)
            metrics.API_WRITES.labels(kind, "create").inc()
        except ApiError as error:
            if error.conflict:
                created = await self.kube.get_custom(kind, namespace, body["metadata"]["name"])
            else:
                run.errors.append(f"creating {kind} {body['metadata']['name']}: {error.message}")
                return None
        return self.cache.put(kind, namespace, created)

    async def _delete_custom(self, kind: str, namespace: str, view: Any, run: Pass) -> None:
        try:
            await self.kube.delete_custom(kind, namespace, view.name, uid=view.uid)
            metrics.API_WRITES.labels(kind, "delete").inc()
        except ApiError as error:
            if not error.not_found:
                run.errors.append(f"deleting {kind} {view.name}: {error.message}")

    async def _create_core(self, body: dict[str, Any], run: Pass, outcome: ShardOutcome
                           ) -> Any:
        kind, meta = body["kind"], body["metadata"]
        try:
            created = await self.kube.create(body)
            metrics.API_WRITES.labels(kind, "create").inc()
        except ApiError as error:
            if error.conflict:
                return None  # exists but not cached yet: its watch event re-queues us
            message = f"creating {kind} {meta['name']} was refused: {error.message}"
            outcome.error = message
            run.errors.append(message)
            return None
        return self.cache.put(kind, meta["namespace"], created)

    async def _patch_core(self, kind: str, namespace: str, name: str, patch: dict[str, Any],
                          run: Pass) -> Any:
        try:
            patched = await self.kube.patch(kind, namespace, name, patch)
            metrics.API_WRITES.labels(kind, "patch").inc()
        except ApiError as error:
            if not error.not_found:
                run.errors.append(f"restoring {kind} {name}: {error.message}")
            return None
        return self.cache.put(kind, namespace, patched)

    async def _delete_core(self, kind: str, namespace: str, view: Any, run: Pass) -> None:
        try:
            await self.kube.delete(kind, namespace, view.name, uid=view.uid)
            metrics.API_WRITES.labels(kind, "delete").inc()
        except ApiError as error:
            if not error.not_found:
                run.errors.append(f"deleting {kind} {view.name}: {error.message}")

    async def _patch_status(self, kind: str, namespace: str, view: Any,
                            status: dict[str, Any], run: Pass) -> None:
        try:
            patched = await self.kube.patch_status(kind, namespace, view.name, status)
            metrics.API_WRITES.labels(kind, "patch-status").inc()
        except ApiError as error:
            if not error.not_found:
                run.errors.append(f"writing the status of {kind} {view.name}: {error.message}")
            return
        self.cache.put(kind, namespace, patched)

    async def _event(self, view: Any, kind: str, type_: str, reason: str, note: str) -> None:
        try:
            await self.kube.post_event(view.body, kind, type_, reason, note, conditions.now())
            metrics.API_WRITES.labels("Event", "create").inc()
        except ApiError as error:
            log.warning("could not post event %s on %s %s: %s", reason, kind, view.name, error)


# ----- pure helpers ------------------------------------------------------------------------


def _split_refused(shards: list[ShardView]) -> tuple[list[ShardView], list[ShardView]]:
    """(supervised, refused): a Shard is supervised only under the name derived from its
    node id and key, the name ``start_shard`` and the schema give it."""
    ok, refused = [], []
    for shard in shards:
        derived = shard.key is not None and shard.name == shard_name(shard.node_id, shard.key)
        (ok if derived else refused).append(shard)
    return ok, refused


def _refused_status(shard: ShardView, namespace: str) -> dict[str, Any]:
    if shard.key is None:
        message = "its spec.key cannot be decoded; it is not supervised"
    else:
        expected = shard_name(shard.node_id, shard.key)
        message = (f"a Shard's name must be derived from its node id and key; this key's is "
                   f"{expected}, not {shard.name}. It gets no Pod, Service or key map entry: "
                   f"delete it and use start_shard (shardctl start-shard), or create it as "
                   f"{expected}")
    reason = NAME_NOT_DERIVED if shard.key is not None else INVALID_KEY
    return {
        "observedGeneration": shard.generation, "phase": "Refused", "ready": False,
        "restarts": 0, "registered": False,
        "conditions": [
            conditions.condition("Ready", False, reason, message, shard.generation),
            conditions.condition("Registered", False, reason, message, shard.generation),
        ],
    }


def _ports_match(ports: list[dict[str, Any]]) -> bool:
    return any(p.get("port") == SHARD_PORT and p.get("targetPort") in (SHARD_PORT, "shard")
               for p in ports)


def _metadata_patch(view: PodView | ServiceView, desired: dict[str, Any], shard_uid: str
                    ) -> dict[str, Any]:
    """Restore labels, the key annotation and the owner reference if someone changed them."""
    meta = desired["metadata"]
    patch: dict[str, Any] = {}
    labels = {k: v for k, v in meta["labels"].items()
              if k in (LABEL_MANAGED_BY, LABEL_NODE_ID, LABEL_SHARD) and view.labels.get(k) != v}
    if labels:
        patch.setdefault("metadata", {})["labels"] = labels
    if view.annotations.get(ANNOTATION_KEY) != meta["annotations"][ANNOTATION_KEY]:
        patch.setdefault("metadata", {})["annotations"] = {
            ANNOTATION_KEY: meta["annotations"][ANNOTATION_KEY]}
    if shard_uid not in view.owners:
        patch.setdefault("metadata", {})["ownerReferences"] = meta["ownerReferences"]
    return patch


def _transition(before: list[dict[str, Any]] | None, after: list[dict[str, Any]],
                kind: str) -> dict[str, Any] | None:
    """The condition ``kind`` in ``after`` if its status or reason differs from ``before``."""
    new, old = conditions.find(after, kind), conditions.find(before, kind)
    if new and (old is None or (old["status"], old["reason"]) != (new["status"], new["reason"])):
        return new
    return None


def _status_differs(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    """Compare statuses ignoring condition timestamps (set only on a real change)."""
    def strip(status: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in status.items() if k != "conditions"}
        out["conditions"] = sorted(
            ({k: v for k, v in c.items() if k != "lastTransitionTime"}
             for c in status.get("conditions") or []), key=lambda c: c.get("type", ""))
        return out
    return strip(current) != strip(desired)


def _shard_status(shard: ShardView, run: Pass, namespace: str) -> dict[str, Any]:
    outcome = run.outcomes.get(shard.name) or ShardOutcome()
    pod = outcome.pod
    registered = shard.name in run.registered
    reason, message = run.unregistered_reason.get(shard.name, (REGISTERED, "in the key map"))
    ready = bool(pod and pod.ready)
    if pod is None:
        ready_reason, ready_message = "PodMissing", outcome.error or "the Pod does not exist yet"
    elif ready:
        ready_reason, ready_message = "PodReady", "the shard's Pod is Ready"
    else:
        ready_reason = pod.waiting_reason or "PodNotReady"
        ready_message = f"the Pod is {pod.phase}" + (
            f" ({pod.waiting_reason})" if pod.waiting_reason else "")
    return {
        "observedGeneration": shard.generation,
        "pod": shard.name,
        "service": f"{shard.name}.{namespace}.svc:{SHARD_PORT}",
        "phase": pod.phase if pod else "Missing",
        "ready": ready,
        "restarts": pod.restarts if pod else 0,
        "registered": registered,
        "conditions": [
            conditions.condition("Ready", ready, ready_reason, ready_message, shard.generation),
            conditions.condition("Registered", registered, REGISTERED if registered else reason,
                                 "listed in the key map" if registered else message,
                                 shard.generation),
        ],
    }


def _invalid_schema_message(problems: list[str]) -> str:
    shown = "; ".join(problems[:PROBLEMS_LISTED_MAX])
    more = len(problems) - PROBLEMS_LISTED_MAX
    return ("this generation is not applied (no Shard is created or deleted for it; the "
            f"running shards are kept): {shown}" + (f"; and {more} more" if more > 0 else ""))


def _shardset_status(owner: ShardSetView, shards: list[ShardView], run: Pass,
                     namespace: str) -> dict[str, Any]:
    generation = owner.generation
    desired = len(shards)
    registered = sum(1 for s in shards if s.name in run.registered)
    pods = {name: o.pod for name, o in run.outcomes.items() if o.pod is not None}
    ready = sum(1 for s in shards if pods.get(s.name) is not None and pods[s.name].ready)
    restarting = sorted(((p.restarts, n) for n, p in pods.items() if p.restarts > 0),
                        reverse=True)
    now = time.time()
    crashing = [n for n, p in pods.items() if is_failing(p, now)]
    full = [n for n, (r, _) in run.unregistered_reason.items() if r == KEY_MAP_FULL]
    degraded_reasons: list[tuple[str, str]] = []
    if run.problems:
        degraded_reasons.append((INVALID_SCHEMA, _invalid_schema_message(run.problems)))
    if crashing:
        degraded_reasons.append((CRASH_LOOP, f"{len(crashing)} shard(s) crash-looping, "
                                 f"e.g. {', '.join(sorted(crashing)[:3])}"))
    if run.errors:
        degraded_reasons.append((RECONCILE_ERROR, "; ".join(run.errors[:3])))
    if full:
        degraded_reasons.append((KEY_MAP_FULL, f"{len(full)} shard(s) do not fit in the key map"))
    converged = registered == desired and ready == desired and not degraded_reasons
    if converged:
        ready_cond = conditions.condition("Ready", True, "AllShardsReady",
                                          f"{ready}/{desired} shards ready and registered",
                                          generation)
        progressing = conditions.condition("Progressing", False, "Converged",
                                           "every shard is ready and registered", generation)
    elif degraded_reasons and not (registered < desired or ready < desired):
        reason, message = degraded_reasons[0]
        ready_cond = conditions.condition("Ready", False, reason, message, generation)
        progressing = conditions.condition("Progressing", False, reason, message, generation)
    else:
        message = f"{ready}/{desired} shards ready, {registered}/{desired} registered"
        reason = degraded_reasons[0][0] if degraded_reasons else "Progressing"
        ready_cond = conditions.condition("Ready", False, reason, message, generation)
        progressing = conditions.condition("Progressing", True, "Progressing", message,
                                           generation)
    if degraded_reasons:
        degraded = conditions.condition("Degraded", True, degraded_reasons[0][0],
                                        degraded_reasons[0][1], generation)
    else:
        degraded = conditions.condition("Degraded", False, "Healthy", "no shard is failing",
                                        generation)
    return {
        "observedGeneration": generation,
        "nodeId": owner.node_id,
        "keyMap": key_map_name(owner.node_id),
        "desiredShards": desired,
        "registeredShards": registered,
        "readyShards": ready,
        "restarts": sum(p.restarts for p in pods.values()),
        "restartingShards": [{"shard": n, "restarts": r}
                             for r, n in restarting[:RESTARTING_LIST_MAX]],
        "conditions": [ready_cond, progressing, degraded],
    }
