"""The one layer over the Kubernetes API: a table of resources and generic verbs.

Every object the project reads, writes or watches is named by a :class:`Resource` (in
the style of kopf's ``_cogs/structs/references.py``): its group, version, plural and
kind. The verbs (``get``, ``list``, ``watch``, ``create``, ``replace``, ``patch``,
``patch_status``, ``delete``) build the URL from that table and send raw JSON through
one ``aiohttp`` session (:class:`Api`: its connection pool, the TLS context and the
credentials of :mod:`.kubeconfig`, looked up per request so that a rotated token or an
expired exec credential is renewed); no Kubernetes client library. Every call returns
plain dicts; errors are ``ApiError`` with the HTTP status and the API server's
message. Each request is reported, with its ``(kind, verb)``, to the ``record``
callback given to :class:`Kube` (the operator's metrics). Nothing here decides anything.

Every request but a GET passes the write fence first (:mod:`.fence`): with leader
election on, a replica that does not hold a fresh lease sends no write at all. The one
exception is the elector's own ``Kube(api, fence=None)``: its Lease writes are what
open the fence.
"""

from __future__ import annotations

import builtins
import json
import os
import secrets
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from . import __version__
from .constants import GROUP, MANAGER, SHARDS, SHARDSETS, VERSION
from .fence import FENCE, Fence
from .kubeconfig import ConfigError, KubeConfig, load

__all__ = ["CALL_ERRORS", "RESOURCES", "TRANSPORT_ERRORS", "WATCHED", "Api", "ApiError",
           "ConfigError", "ConfigException", "Kube", "Resource", "load_config", "transient"]

ConfigException = ConfigError  # the name callers catch

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
# One watch event is one line: a whole object (a full key map is about 1 MB of JSON).
WATCH_LINE_MAX = 16 * 2**20


@dataclass(frozen=True, slots=True)
class Resource:
    """A kind of object of the API and where its objects live."""

    group: str  # "" for the core API
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def patch_type(self) -> str:
        """Built-in kinds take strategic merge patches; custom resources only merge
        patches."""
        return STRATEGIC_MERGE_PATCH if not self.group else MERGE_PATCH

    def path(self, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        """The URL path of the collection (``name`` None) or of one object; a namespaced
        resource with ``namespace`` None is its collection across all namespaces."""
        parts = [f"/apis/{self.group}" if self.group else "/api", self.version]
        if self.namespaced and namespace is not None:
            parts += ["namespaces", quote(namespace, safe="")]
        parts.append(self.plural)
        if name is not None:
            parts.append(quote(name, safe=""))
            if subresource is not None:
                parts.append(subresource)
        return "/".join(parts)


SHARDSET = Resource(GROUP, VERSION, SHARDSETS, "ShardSet")
SHARD = Resource(GROUP, VERSION, SHARDS, "Shard")
POD = Resource("", "v1", "pods", "Pod")
SERVICE = Resource("", "v1", "services", "Service")
CONFIG_MAP = Resource("", "v1", "configmaps", "ConfigMap")
CLAIM = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
BUDGET = Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")
NETWORK_POLICY = Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy")
STORAGE_CLASS = Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass",
                         namespaced=False)
EVENT = Resource("events.k8s.io", "v1", "events", "Event")
LEASE = Resource("coordination.k8s.io", "v1", "leases", "Lease")

RESOURCES: dict[str, Resource] = {r.kind: r for r in (
    SHARDSET, SHARD, POD, SERVICE, CONFIG_MAP, CLAIM, BUDGET, STORAGE_CLASS, EVENT,
    NETWORK_POLICY, LEASE)}
# What the operator watches and caches, in the order it lists them at start-up.
WATCHED: tuple[Resource, ...] = (SHARDSET, SHARD, POD, SERVICE, CONFIG_MAP, CLAIM, BUDGET,
                                 NETWORK_POLICY)


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message

    @classmethod
    def of_status(cls, status: int, body: Any, text: str = "") -> ApiError:
        """From an answer's HTTP status and its ``Status`` body (or watch ERROR object)."""
        body = body if isinstance(body, dict) else {}
        return cls(int(body.get("code") or status), str(body.get("reason", "")),
                   str(body.get("message", text)))

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def invalid(self) -> bool:
        """The object itself is refused (422 Invalid): only a change to it can help."""
        return self.status == 422


# No answer from the API server (connection refused or reset, a timeout): worth a retry.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError)
# Everything a call can fail with: a refusal, or no answer.
CALL_ERRORS: tuple[type[BaseException], ...] = (ApiError, *TRANSPORT_ERRORS)


def transient(error: BaseException) -> bool:
    """Whether a retry may succeed: no answer, a conflict, throttling or a server error."""
    if isinstance(error, ApiError):
        return error.status in (0, 408, 409, 429) or error.status >= 500
    return isinstance(error, TRANSPORT_ERRORS)


def status_class(error: BaseException | None) -> str:
    """``2xx`` for success, else the HTTP status class, or ``error`` for no answer."""
    if error is None:
        return "2xx"
    status = getattr(error, "status", 0) or 0
    return f"{status // 100}xx" if status else "error"


# A request sent on a pooled connection the peer had already closed fails with these.
STALE_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


class Api:
    """One connection pool to the API server: an aiohttp session (made at first use, in
    the running loop) of at most ``pool_size`` connections, with the TLS context and
    credentials of ``config`` taken per request."""

    USER_AGENT = f"shard-operator/{__version__}"

    def __init__(self, config: KubeConfig, pool_size: int = 64) -> None:
        self.config, self.pool_size = config, pool_size
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.pool_size),
                # No total limit: watches stream for minutes (a verb gives its own).
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=30),
                headers={"User-Agent": self.USER_AGENT}, auto_decompress=True)
        return self._session

    async def request(self, method: str, path: str, query: list[tuple[str, Any]],
                      body: Any = None, content_type: str = JSON) -> aiohttp.ClientResponse:
        """Send one request; the response, whose status is not checked yet (a 401 makes
        the credentials load again at the next request)."""
        headers, context = await self.config.request_settings()
        headers = {**headers, "Accept": JSON, "Content-Type": content_type}
        params = [(key, _query_value(value)) for key, value in query]
        data = json.dumps(body) if body is not None else None
        try:
            response = await self.session.request(method, self.config.server + path,
                                                  params=params, data=data,
                                                  headers=headers, ssl=context)
        except STALE_CONNECTION_ERRORS as error:
            if isinstance(error, aiohttp.ClientConnectorError):
                raise  # a new connection failed: nothing stale to replace
            # A pooled keep-alive connection the API server had closed (a restart, its
            # idle timeout): sent again once, on a new connection, as client-go does.
            # Every verb here tolerates a replay (a create answers 409, a delete by UID
            # 404, patches and reads are idempotent).
            response = await self.session.request(method, self.config.server + path,
                                                  params=params, data=data,
                                                  headers=headers, ssl=context)
        if response.status == 401:
            self.config.invalidate()
        return response

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def load_config(pool_size: int = 64, *, kubeconfig: str | None = None,
                      context: str | None = None) -> Api:
    """The API server of ``kubeconfig`` (else $KUBECONFIG, read now, else
    ~/.kube/config) and its ``context`` (else the current one), or of the in-cluster
    service account; ConfigError (alias ConfigException) says what is missing."""
    return Api(load(kubeconfig, context), pool_size)


# (kind, verb, status class, seconds) of one request: see metrics.observe_request.
Recorder = Callable[[str, str, str, float], None]


def _resource(kind: str) -> Resource:
    try:
        return RESOURCES[kind]
    except KeyError:
        raise ValueError(f"no resource {kind!r} in kube.RESOURCES") from None


class Kube:
    """The generic verbs over :data:`RESOURCES`, addressed by kind."""

    def __init__(self, api: Api, *, record: Recorder | None = None,
                 fence: Fence | None = FENCE) -> None:
        """``fence`` None: this Kube's writes are not fenced (the elector's own, whose
        Lease writes open the fence; nothing else may use that)."""
        self.api = api
        self.record = record
        self.fence = fence

    async def close(self) -> None:
        await self.api.close()

    async def _open(self, method: str, path: str, query: list[tuple[str, Any]],
                    body: Any = None, content_type: str = JSON, kind: str = "") -> Any:
        """Send one request; the aiohttp response, whose status is not checked yet.
        Anything but a GET must pass the fence (nothing goes around it)."""
        if method != "GET" and self.fence is not None:
            self.fence.check(kind or path, method.lower())
        return await self.api.request(method, path, query, body, content_type)

    async def _request(self, resource: Resource, verb: str, method: str, path: str, *,
                       query: list[tuple[str, Any]] | None = None, body: Any = None,
                       content_type: str = JSON) -> dict[str, Any]:
        if method != "GET" and self.fence is not None:  # refused before it counts
            self.fence.check(resource.kind, verb)
        started, failure = time.monotonic(), None
        try:
            response = await self._open(method, path, query or [], body, content_type,
                                        resource.kind)
            async with response:
                text = await response.text()
                status = response.status
            answer = json.loads(text) if text else {}
            if status >= 400:
                raise ApiError.of_status(status, answer, text)
            return answer
        except BaseException as error:
            failure = error
            raise
        finally:
            if self.record is not None:
                self.record(resource.kind, verb, status_class(failure),
                            time.monotonic() - started)

    # ----- reads ------------------------------------------------------------------------

    async def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        resource = _resource(kind)
        return await self._request(resource, "get", "GET", resource.path(namespace, name))

    async def exists(self, kind: str, namespace: str | None, name: str) -> bool:
        try:
            await self.get(kind, namespace, name)
        except ApiError as error:
            if error.not_found:
                return False
            raise
        return True

    async def list(self, kind: str, namespace: str | None = None, *,
                   field_selector: str | None = None, limit: int | None = None,
                   token: str | None = None) -> dict[str, Any]:
        """One List answer (``items``, ``metadata.resourceVersion`` and, with ``limit``,
        ``metadata.continue``); ``namespace`` None lists all namespaces;
        ``field_selector`` (e.g. ``spec.nodeId=node-1``, a CRD selectable field) lets
        the API server filter."""
        resource = _resource(kind)
        query: builtins.list[tuple[str, Any]] = []
        if field_selector:
            query.append(("fieldSelector", field_selector))
        if limit:
            query.append(("limit", limit))
        if token:
            query.append(("continue", token))
        return await self._request(resource, "list", "GET", resource.path(namespace),
                                   query=query)

    async def list_names(self, kind: str, namespace: str | None, page: int = 500
                         ) -> builtins.list[tuple[str, str]]:
        """``(namespace, name)`` of every object of ``kind`` (all namespaces if None),
        read page by page."""
        names: builtins.list[tuple[str, str]] = []
        token = ""
        while True:
            result = await self.list(kind, namespace, limit=page, token=token)
            names.extend((item["metadata"].get("namespace", ""), item["metadata"]["name"])
                         for item in result.get("items", []))
            token = (result.get("metadata") or {}).get("continue") or ""
            if not token:
                return names

    async def watch(self, kind: str, namespace: str | None = None, *,
                    field_selector: str | None = None, resource_version: str | None = None,
                    timeout_seconds: int | None = None
                    ) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        """``(type, object)`` of each change after ``resource_version``, until the API
        server ends the stream (after ``timeout_seconds``); an ERROR event (e.g. 410
        Gone: list again) raises ApiError. Bookmarks are skipped."""
        resource = _resource(kind)
        query: builtins.list[tuple[str, Any]] = [("watch", "true")]
        if field_selector:
            query.append(("fieldSelector", field_selector))
        if resource_version:
            query.append(("resourceVersion", resource_version))
        if timeout_seconds is not None:
            query.append(("timeoutSeconds", timeout_seconds))
        started, failure = time.monotonic(), None
        try:
            response = await self._open("GET", resource.path(namespace), query)
            async with response:
                if response.status >= 400:
                    text = await response.text()
                    raise ApiError.of_status(response.status, _json_or_none(text), text)
                while line := await response.content.readuntil(b"\n", max_size=WATCH_LINE_MAX):
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        raise ApiError.of_status(500, event.get("object"))
                    if event.get("type") != "BOOKMARK":
                        yield event["type"], event["object"]
        except GeneratorExit:
            raise
        except BaseException as error:
            failure = error
            raise
        finally:
            if self.record is not None:
                self.record(resource.kind, "watch", status_class(failure),
                            time.monotonic() - started)

    # ----- writes -----------------------------------------------------------------------

    async def create(self, body: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Create ``body`` (its ``kind`` says where); ``dry_run`` asks the API server to
        validate and admit it without storing it."""
        resource = _resource(body["kind"])
        query: builtins.list[tuple[str, Any]] = [("fieldManager", MANAGER)]
        if dry_run:
            query.append(("dryRun", "All"))
        namespace = body["metadata"].get("namespace") if resource.namespaced else None
        return await self._request(resource, "create", "POST", resource.path(namespace),
                                   query=query, body=body)

    async def replace(self, body: dict[str, Any]) -> dict[str, Any]:
        resource, meta = _resource(body["kind"]), body["metadata"]
        return await self._request(resource, "replace", "PUT",
                                   resource.path(meta.get("namespace"), meta["name"]),
                                   query=[("fieldManager", MANAGER)], body=body)

    async def patch(self, kind: str, namespace: str | None, name: str, patch: dict[str, Any]
                    ) -> dict[str, Any]:
        """A strategic merge patch (built-in kinds) or merge patch (custom resources)."""
        resource = _resource(kind)
        return await self._request(resource, "patch", "PATCH", resource.path(namespace, name),
                                   query=[("fieldManager", MANAGER)], body=patch,
                                   content_type=resource.patch_type)

    async def patch_status(self, kind: str, namespace: str | None, name: str,
                           status: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch ``status`` (the only thing the operator writes on its kinds)."""
        resource = _resource(kind)
        return await self._request(resource, "patch-status", "PATCH",
                                   resource.path(namespace, name, "status"),
                                   query=[("fieldManager", MANAGER)],
                                   body={"status": status}, content_type=MERGE_PATCH)

    async def delete(self, kind: str, namespace: str | None, name: str,
                     uid: str | None = None) -> None:
        """Delete, only the incarnation ``uid`` if given."""
        resource = _resource(kind)
        body = {"preconditions": {"uid": uid}} if uid else None
        await self._request(resource, "delete", "DELETE", resource.path(namespace, name),
                            body=body)

    async def post_event(self, regarding: dict[str, Any], kind: str, type_: str, reason: str,
                         note: str, now: str) -> None:
        meta = regarding["metadata"]
        await self.create({
            "apiVersion": EVENT.api_version, "kind": EVENT.kind,
            "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}",
                         "namespace": meta["namespace"]},
            "eventTime": now.replace("Z", ".000000Z"),
            "reportingController": f"{GROUP}/{MANAGER}",
            "reportingInstance": os.environ.get("HOSTNAME", MANAGER),
            "action": "Reconcile", "reason": reason, "type": type_, "note": note[:1024],
            "regarding": {"apiVersion": _resource(kind).api_version, "kind": kind,
                          "name": meta["name"], "namespace": meta["namespace"],
                          "uid": meta["uid"]},
        })


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
