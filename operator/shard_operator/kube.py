"""The thin layer over the Kubernetes API (kubernetes_asyncio, raw JSON bodies).

Every call returns plain dicts; errors are ``ApiError`` with the HTTP status and the
API server's message. Nothing here decides anything.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from .constants import GROUP, MANAGER, SHARDS, SHARDSETS, VERSION

PLURALS = {"ShardSet": SHARDSETS, "Shard": SHARDS}


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message

    @classmethod
    def of(cls, error: ApiException) -> ApiError:
        message, reason = str(error.reason or ""), str(error.reason or "")
        try:
            body = json.loads(error.body or "{}")
            message = body.get("message", message)
            reason = body.get("reason", reason)
        except (ValueError, TypeError):
            pass
        return cls(error.status or 0, reason, message)

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


# No answer from the API server (connection refused or reset, a timeout): worth a retry.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError)


def transient(error: BaseException) -> bool:
    """Whether a retry may succeed: no answer, a conflict, throttling or a server error."""
    if isinstance(error, ApiError):
        return error.status in (0, 408, 409, 429) or error.status >= 500
    return isinstance(error, TRANSPORT_ERRORS)


async def load_config(pool_size: int = 64, *, kubeconfig: str | None = None,
                      context: str | None = None) -> client.ApiClient:
    """An ApiClient from ``kubeconfig`` (else $KUBECONFIG / ~/.kube/config) and its
    ``context`` (else the current one), or the in-cluster account."""
    configuration = client.Configuration()
    kubeconfig = kubeconfig or os.environ.get("KUBECONFIG")
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not kubeconfig and not context:
        config.load_incluster_config(client_configuration=configuration)
    else:
        # Read $KUBECONFIG now: kubernetes_asyncio reads it only once, at import.
        await config.load_kube_config(config_file=kubeconfig, context=context,
                                      client_configuration=configuration)
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)


class Kube:
    """Create, patch, replace and delete the objects the operator manages."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.events = client.EventsV1Api(api)

    async def close(self) -> None:
        await self.api.close()

    async def _call(self, method, *args, **kwargs) -> dict[str, Any]:
        try:
            response = await method(*args, _preload_content=False, **kwargs)
            async with response:
                text = await response.text()
                status = response.status
        except ApiException as error:
            raise ApiError.of(error) from None
        body = json.loads(text) if text else {}
        if status >= 400:
            raise ApiError(status, str(body.get("reason", "")), str(body.get("message", text)))
        return body

    # ----- reads ------------------------------------------------------------------------

    async def list_names(self, kind: str, namespace: str | None, page: int = 500
                         ) -> list[tuple[str, str]]:
        """``(namespace, name)`` of every object of ``kind`` (all namespaces if None),
        read page by page."""
        if kind in PLURALS:
            args: tuple[Any, ...] = (GROUP, VERSION, PLURALS[kind])
            method = (self.custom.list_cluster_custom_object if namespace is None
                      else self.custom.list_namespaced_custom_object)
            if namespace is not None:
                args = (GROUP, VERSION, namespace, PLURALS[kind])
        else:
            lower = {"Pod": "pod", "Service": "service", "ConfigMap": "config_map"}[kind]
            if namespace is None:
                method, args = getattr(self.core, f"list_{lower}_for_all_namespaces"), ()
            else:
                method, args = getattr(self.core, f"list_namespaced_{lower}"), (namespace,)
        names: list[tuple[str, str]] = []
        token = ""
        while True:
            extra = {"_continue": token} if token else {}
            result = await self._call(method, *args, limit=page, **extra)
            names.extend((item["metadata"]["namespace"], item["metadata"]["name"])
                         for item in result.get("items", []))
            token = (result.get("metadata") or {}).get("continue") or ""
            if not token:
                return names

    async def exists(self, kind: str, namespace: str, name: str) -> bool:
        try:
            if kind in PLURALS:
                await self.get_custom(kind, namespace, name)
            else:
                lower = {"Pod": "pod", "Service": "service", "ConfigMap": "config_map"}[kind]
                await self._call(getattr(self.core, f"read_namespaced_{lower}"), name, namespace)
        except ApiError as error:
            if error.not_found:
                return False
            raise
        return True

    # ----- custom resources ------------------------------------------------------------

    async def get_custom(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return await self._call(self.custom.get_namespaced_custom_object, GROUP, VERSION,
                                namespace, PLURALS[kind], name)

    async def list_custom(self, kind: str, namespace: str, field_selector: str | None = None
                          ) -> list[dict[str, Any]]:
        """Every object of ``kind`` in ``namespace``; ``field_selector`` (e.g.
        ``spec.nodeId=node-1``, a CRD selectable field) lets the API server filter."""
        extra = {"field_selector": field_selector} if field_selector else {}
        result = await self._call(self.custom.list_namespaced_custom_object, GROUP, VERSION,
                                  namespace, PLURALS[kind], **extra)
        return result.get("items", [])

    async def create_custom(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call(self.custom.create_namespaced_custom_object, GROUP, VERSION,
                                body["metadata"]["namespace"], PLURALS[kind], body,
                                field_manager=MANAGER)

    async def delete_custom(self, kind: str, namespace: str, name: str,
                            uid: str | None = None) -> None:
        body = {"preconditions": {"uid": uid}} if uid else None
        await self._call(self.custom.delete_namespaced_custom_object, GROUP, VERSION,
                         namespace, PLURALS[kind], name, body=body)

    async def patch_status(self, kind: str, namespace: str, name: str,
                           status: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch ``status`` (the only thing the operator writes on these kinds)."""
        return await self._call(self.custom.patch_namespaced_custom_object_status, GROUP,
                                VERSION, namespace, PLURALS[kind], name, {"status": status},
                                field_manager=MANAGER,
                                _content_type="application/merge-patch+json")

    # ----- core objects ----------------------------------------------------------------

    async def create(self, body: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        """Create a Pod, Service or ConfigMap; ``dry_run`` asks the API server to validate
        and admit it without storing it."""
        namespace = body["metadata"]["namespace"]
        method = {"Pod": self.core.create_namespaced_pod,
                  "Service": self.core.create_namespaced_service,
                  "ConfigMap": self.core.create_namespaced_config_map}[body["kind"]]
        extra = {"dry_run": "All"} if dry_run else {}
        return await self._call(method, namespace, body, field_manager=MANAGER, **extra)

    async def patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any]
                    ) -> dict[str, Any]:
        """A strategic merge patch of a Pod, Service or ConfigMap."""
        method = {"Pod": self.core.patch_namespaced_pod,
                  "Service": self.core.patch_namespaced_service,
                  "ConfigMap": self.core.patch_namespaced_config_map}[kind]
        return await self._call(method, name, namespace, patch, field_manager=MANAGER,
                                _content_type="application/strategic-merge-patch+json")

    async def replace_config_map(self, body: dict[str, Any]) -> dict[str, Any]:
        meta = body["metadata"]
        return await self._call(self.core.replace_namespaced_config_map, meta["name"],
                                meta["namespace"], body, field_manager=MANAGER)

    async def get_config_map(self, namespace: str, name: str) -> dict[str, Any]:
        return await self._call(self.core.read_namespaced_config_map, name, namespace)

    async def delete(self, kind: str, namespace: str, name: str, uid: str | None = None
                     ) -> None:
        method = {"Pod": self.core.delete_namespaced_pod,
                  "Service": self.core.delete_namespaced_service,
                  "ConfigMap": self.core.delete_namespaced_config_map}[kind]
        body = {"preconditions": {"uid": uid}} if uid else None
        await self._call(method, name, namespace, body=body)

    async def post_event(self, regarding: dict[str, Any], kind: str, type_: str, reason: str,
                         note: str, now: str) -> None:
        meta = regarding["metadata"]
        event = {
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}",
                         "namespace": meta["namespace"]},
            "eventTime": now.replace("Z", ".000000Z"),
            "reportingController": f"{GROUP}/{MANAGER}",
            "reportingInstance": os.environ.get("HOSTNAME", MANAGER),
            "action": "Reconcile", "reason": reason, "type": type_, "note": note[:1024],
            "regarding": {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind,
                          "name": meta["name"], "namespace": meta["namespace"],
                          "uid": meta["uid"]},
        }
        await self._call(self.events.create_namespaced_event, meta["namespace"], event)
