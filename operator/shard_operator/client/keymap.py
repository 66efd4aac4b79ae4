"""The Ordering side's view of a node's key map: a local copy kept current by a watch
(never by polling), exact-key lookups, and ``ensure_started`` as the original Ordering
does it (start on a miss, accept "already started")."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from .. import keymap
from ..api import astart_shard
from ..errors import AlreadyStarted, InvalidInput, KeyMapUnavailable, KeyNotFound
from ..keys import InvalidKey, Key, KeySegments, key_map_name, to_key, validate_node_id
from ..kube import Kube, load_config
from ..missing import MISSING

log = logging.getLogger("shard_operator.client.keymap")


class KeyMapWatcher:
    """Watch ``shard-key-map-<nodeId>`` and resolve keys to shard Service addresses.

    Use as ``async with KeyMapWatcher("node-1", namespace="ns") as keys:``; the block
    starts once the first listing is in. While the API server is unreachable, the
    last map seen keeps answering (``stale`` is True); a deleted or unreadable map
    makes lookups raise KeyMapUnavailable.
    """

    def __init__(self, node_id: str, *, namespace: str = "default", kube: Kube | None = None,
                 retry_seconds: float = 1.0) -> None:
        try:
            self.node_id = validate_node_id(node_id)
        except InvalidKey as error:
            raise InvalidInput(str(error)) from None
        self.namespace = namespace
        self.name = key_map_name(node_id)
        self._kube, self._own_kube = kube, kube is None
        self._retry = retry_seconds
        self._map: keymap.KeyMap | None = None
        self._problem = "the key map has not been read yet"
        self._synced = asyncio.Event()
        self._changed = asyncio.Condition()
        self._task: asyncio.Task | None = None
        self.stale = False
        self.updates = 0  # how many versions of the map were seen

    async def __aenter__(self) -> KeyMapWatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self, timeout: float = 30.0) -> None:
        if self._kube is None:
            self._kube = Kube(await load_config(pool_size=4))
        self._task = asyncio.create_task(self._run(), name=f"keymap-watch-{self.name}")
        async with asyncio.timeout(timeout):
            await self._synced.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._own_kube and self._kube is not None:
            await self._kube.close()

    # ----- lookups ---------------------------------------------------------------------

    def keys(self) -> dict[Key, str]:
        """Every registered key and its Service address."""
        current = self._require()
        return {key: current.address(key) for key in current.shards}

    def lookup(self, key: KeySegments) -> str:
        """The Service address (``host:port``) of the shard holding ``key``."""
        canonical = _canonical(key)
        current = self._require()
        try:
            return current.address(canonical)
        except KeyError:
            raise KeyNotFound(f"key not found in map {self.name}") from None

    async def wait_for(self, key: KeySegments, timeout: float = 30.0) -> str:
        """Wait until ``key`` is in the local copy; its address."""
        canonical = _canonical(key)
        async with asyncio.timeout(timeout), self._changed:
            while True:
                if self._map is not None and canonical in self._map.shards:
                    return self._map.address(canonical)
                await self._changed.wait()

    async def ensure_started(self, key: KeySegments, initial_value: Any = MISSING,
                             timeout: float = 60.0) -> str:
        """Look ``key`` up; on a miss start its shard (accepting "already started") and
        return its address once the watch shows it."""
        try:
            return self.lookup(key)
        except KeyNotFound:
            pass
        try:
            await astart_shard(self.node_id, key, initial_value, namespace=self.namespace,
                               timeout=timeout, kube=self._kube)
        except AlreadyStarted:
            pass
        return await self.wait_for(key, timeout)

    def _require(self) -> keymap.KeyMap:
        if self._map is None:
            raise KeyMapUnavailable(f"key map {self.name}: {self._problem}")
        return self._map

    # ----- the watch -------------------------------------------------------------------

    async def _set(self, body: dict[str, Any] | None, problem: str = "") -> None:
        if body is None:
            self._map, self._problem = None, problem
        else:
            try:
                self._map = keymap.parse(body.get("data"))
            except keymap.KeyMapFormatError as error:
                self._map, self._problem = None, str(error)
        self.updates += 1
        self.stale = False
        self._synced.set()
        async with self._changed:
            self._changed.notify_all()

    async def _run(self) -> None:
        assert self._kube is not None
        selector = f"metadata.name={self.name}"
        while True:
            try:
                listing = await self._kube.list("ConfigMap", self.namespace,
                                                field_selector=selector)
                items = listing.get("items") or []
                await self._set(items[0] if items else None, "it does not exist")
                version = (listing.get("metadata") or {}).get("resourceVersion")
                async with contextlib.aclosing(self._kube.watch(
                        "ConfigMap", self.namespace, field_selector=selector,
                        resource_version=version, timeout_seconds=300)) as stream:
                    async for kind, obj in stream:
                        if kind == "DELETED":
                            await self._set(None, "it was deleted")
                        elif kind in ("ADDED", "MODIFIED"):
                            await self._set(obj)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # any failure: keep the last map, re-list
                self.stale = self._map is not None
                log.warning("watch of %s interrupted (%s); re-listing", self.name, error)
                await asyncio.sleep(self._retry)


def _canonical(key: KeySegments) -> Key:
    if isinstance(key, (str, bytes)):
        raise InvalidInput("a key is a list of segments, e.g. ['a', 'b']")
    try:
        return to_key(list(key))[0]
    except InvalidKey as error:
        raise InvalidInput(f"invalid key: {error}") from None
