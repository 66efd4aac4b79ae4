"""A lean API-server client for the harness itself: raw HTTP, JSON lines for watches,
so that watching thousands of pods costs the measured system as little CPU as possible.
(The raw baseline writes through ``shard_operator.kube.Kube``, like the operator.)"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from shard_operator.kube import STALE_CONNECTION_ERRORS


class KubeHttp:
    def __init__(self, kubeconfig: Path, token: str | None = None) -> None:
        config = json.loads(Path(kubeconfig).read_text())
        cluster = config["clusters"][0]["cluster"]
        self.server = cluster["server"]
        self.token = token or config["users"][0]["user"]["token"]
        context = ssl.create_default_context()
        context.load_verify_locations(
            cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        self._ssl: ssl.SSLContext | bool = context
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def plain(cls, server: str, token: str = "") -> KubeHttp:
        """A client of a plain-HTTP server (the tests' fake API server)."""
        client = cls.__new__(cls)
        client.server, client.token, client._ssl, client._session = server, token, False, None
        return client

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self.token}"},
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=64))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, path: str, body: Any = None,
                      content_type: str = "application/json") -> tuple[int, Any]:
        data = json.dumps(body) if body is not None else None
        timeout = aiohttp.ClientTimeout(total=None, sock_read=600)  # big listings are slow
        try:
            return await self._send(method, path, data, content_type, timeout)
        except STALE_CONNECTION_ERRORS as error:
            if isinstance(error, aiohttp.ClientConnectorError):
                raise  # a new connection failed: nothing stale to replace
            # A pooled connection the API server had closed under load: once more on a
            # new one, as the operator's client does (kube.Api.request).
            return await self._send(method, path, data, content_type, timeout)

    async def _send(self, method: str, path: str, data: str | None, content_type: str,
                    timeout: aiohttp.ClientTimeout) -> tuple[int, Any]:
        async with self.session.request(method, self.server + path, data=data,
                                        headers={"Content-Type": content_type},
                                        timeout=timeout) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text) if text else {}
            except ValueError:
                return response.status, text

    async def get(self, path: str) -> Any:
        status, body = await self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body}")
        return body

    async def text(self, path: str) -> str:
        async with self.session.get(self.server + path) as response:
            return await response.text()

    async def watch(self, path: str, on_event: Callable[[str, dict[str, Any]], None],
                    stop: asyncio.Event) -> None:
        """List then watch ``path`` (a collection), calling ``on_event(type, obj)`` for the
        listing (as ADDED) and every change, until ``stop`` is set.

        A watch that ends (its timeout, a dropped connection, a failed request) resumes
        from the last resourceVersion it delivered (an event's or a bookmark's), so no
        change is missed or repeated. Only when the API server no longer has that version
        (410 Gone) is the collection listed again: then what the listing lacks is
        delivered as DELETED, as an informer's replace does."""
        known: dict[str, dict[str, Any]] = {}  # namespace/name -> last object delivered
        version: str | None = None
        while not stop.is_set():
            try:
                if version is None:
                    version = await self._relist(path, on_event, known)
                version = await self._watch_from(path, version, on_event, known, stop)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a failed request must not end the watch
                print(f"watch {path}: {type(error).__name__}: {error}; resuming from "
                      f"resourceVersion {version}", file=sys.stderr, flush=True)
                await asyncio.sleep(0.5)

    async def _relist(self, path: str, on_event: Callable[[str, dict[str, Any]], None],
                      known: dict[str, dict[str, Any]]) -> str:
        listing = await self.get(path)
        for kind, obj in relist_events(known, listing.get("items", [])):
            on_event(kind, obj)
        return str(listing["metadata"]["resourceVersion"])

    async def _watch_from(self, path: str, version: str,
                          on_event: Callable[[str, dict[str, Any]], None],
                          known: dict[str, dict[str, Any]], stop: asyncio.Event
                          ) -> str | None:
        """Watch from ``version`` until the stream ends: the version to resume from, or
        None when the collection must be listed again (410 Gone, or another error)."""
        sep = "&" if "?" in path else "?"
        url = (f"{self.server}{path}{sep}watch=1&resourceVersion={version}"
               "&allowWatchBookmarks=true&timeoutSeconds=900")
        async with self.session.get(url, timeout=aiohttp.ClientTimeout(
                total=None, sock_read=None)) as response:
            if response.status == 410:
                return None
            if response.status != 200:
                raise RuntimeError(f"watch {path}: HTTP {response.status}")
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":  # e.g. 410 Gone: list again
                        return None
                    version = str(obj["metadata"].get("resourceVersion") or version)
                    if kind != "BOOKMARK":
                        _remember(known, kind, obj)
                        on_event(kind, obj)
                if stop.is_set():
                    return version
        return version


def _key(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def _remember(known: dict[str, dict[str, Any]], kind: str, obj: dict[str, Any]) -> None:
    if kind == "DELETED":
        known.pop(_key(obj), None)
    else:
        known[_key(obj)] = obj


def relist_events(known: dict[str, dict[str, Any]], items: list[dict[str, Any]]
                  ) -> list[tuple[str, dict[str, Any]]]:
    """What a (re-)listing delivers: every item as ADDED, then DELETED for each object
    delivered before that the listing no longer holds; ``known`` is brought up to it."""
    listed = {_key(item): item for item in items}
    gone = [obj for key, obj in known.items() if key not in listed]
    known.clear()
    known.update(listed)
    return [("ADDED", item) for item in items] + [("DELETED", obj) for obj in gone]


def pod_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or [])


class PodTracker:
    """Which pods of a namespace are Running and Ready, and when each pod (by uid)
    first became so; wakes waiters on every change."""

    def __init__(self) -> None:
        self.ready: dict[str, str] = {}  # name -> uid of the Ready incarnation
        self.ready_at: dict[str, float] = {}  # uid -> first time seen Ready
        self.uids: dict[str, str] = {}  # name -> current uid
        self.changed = asyncio.Event()

    def on_event(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        name, uid = meta["name"], meta["uid"]
        if kind == "DELETED":
            if self.uids.get(name) == uid:
                self.uids.pop(name, None)
                self.ready.pop(name, None)
        else:
            self.uids[name] = uid
            if pod_ready(pod) and not meta.get("deletionTimestamp"):
                self.ready[name] = uid
                self.ready_at.setdefault(uid, time.monotonic())
            elif self.ready.get(name) == uid:
                self.ready.pop(name, None)
        self.changed.set()

    async def wait(self, predicate: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


class Watching:
    """Run some watches in the background for the duration of a block."""

    def __init__(self, api: KubeHttp) -> None:
        self.api, self.stop, self.tasks = api, asyncio.Event(), []

    def add(self, path: str, on_event: Callable[[str, dict[str, Any]], None]) -> None:
        self.tasks.append(asyncio.create_task(self.api.watch(path, on_event, self.stop)))

    async def close(self) -> None:
        self.stop.set()
        for task in self.tasks:
            task.cancel()
        # gather, not `await task` under suppress(CancelledError): a cancellation of the
        # caller itself (Ctrl-C) must not be swallowed here.
        await asyncio.gather(*self.tasks, return_exceptions=True)


def parse_metrics(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Samples of one Prometheus metric family: (labels, value)."""
    out = []
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        labels: dict[str, str] = {}
        if "{" in head:
            inner = head[head.index("{") + 1:head.rindex("}")]
            for part in _split_labels(inner):
                key, _, val = part.partition("=")
                labels[key] = val.strip('"')
        out.append((labels, float(value)))
    return out


def _split_labels(inner: str) -> list[str]:
    parts, current, quoted = [], "", False
    for ch in inner:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current:
        parts.append(current)
    return parts


WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "APPLY", "DELETECOLLECTION", "CREATE",
               "UPDATE"}
OPERATOR_RESOURCES = {"shardsets", "shards", "pods", "services", "configmaps", "events",
                      "networkpolicies"}
# kwok writes pod status and the scheduler binds pods: neither is the operator.
FOREIGN_SUBRESOURCES = {("pods", "status"), ("pods", "binding"), ("pods", "eviction")}


def write_counts(text: str) -> dict[str, float]:
    """apiserver_request_total summed by resource[/subresource], write verbs only, on the
    operator's resources (minus what kwok and the scheduler write)."""
    counts: dict[str, float] = {}
    for labels, value in parse_metrics(text, "apiserver_request_total"):
        resource, sub = labels.get("resource", ""), labels.get("subresource", "")
        if labels.get("verb", "").upper() not in WRITE_VERBS:
            continue
        if resource not in OPERATOR_RESOURCES or (resource, sub) in FOREIGN_SUBRESOURCES:
            continue
        key = f"{resource}/{sub}" if sub else resource
        counts[key] = counts.get(key, 0.0) + value
    return counts


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after if after[k] - before.get(k, 0.0)}
