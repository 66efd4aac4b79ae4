"""An in-memory stand-in for :class:`shard_operator.kube.Kube`, for tests of the
controller's decisions and failure handling without an API server.

It keeps objects by (kind, namespace, name), gives them a uid and an increasing
resourceVersion, records every write, and raises the errors queued in ``failures``
(by verb: ``create``, ``replace``, ``patch``, ``patch_status``, ``delete``,
``post_event``) one per call."""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections import defaultdict
from typing import Any

from shard_operator.cache import Cache
from shard_operator.controller import Controller
from shard_operator.kube import ApiError

NS = "ns"


def merged(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) applied: maps merged, null removes, the rest
    replaced."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merged(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.writes: list[tuple[str, str, str]] = []  # (verb, kind, name)
        self.events: list[dict[str, Any]] = []
        self.failures: dict[str, list[BaseException]] = defaultdict(list)
        self._versions = itertools.count(1)
        self.list_calls: list[dict[str, Any]] = []

    def _maybe_fail(self, method: str) -> None:
        if self.failures[method]:
            raise self.failures[method].pop(0)

    def _store(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(body)
        meta = body["metadata"]
        key = (kind, meta["namespace"], meta["name"])
        old = self.objects.get(key)
        meta.setdefault("uid", old["metadata"]["uid"] if old else f"uid-{meta['name']}")
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = str(next(self._versions))
        self.objects[key] = body
        return copy.deepcopy(body)

    def stored(self, kind: str, name: str) -> dict[str, Any] | None:
        """The object as stored (not a copy), in namespace NS."""
        return self.objects.get((kind, NS, name))

    # ----- the Kube verbs the controller and api.py call ------------------------------

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        found = self.objects.get((kind, namespace, name))
        if found is None:
            raise ApiError(404, "NotFound", "not found")
        return copy.deepcopy(found)

    async def list(self, kind: str, namespace: str | None = None, *,
                   field_selector: str | None = None, **_: Any) -> dict[str, Any]:
        self.list_calls.append({"kind": kind, "field_selector": field_selector})
        return {"items": [copy.deepcopy(o) for (k, ns, _), o in self.objects.items()
                          if k == kind and ns == namespace],
                "metadata": {"resourceVersion": str(next(self._versions))}}

    async def create(self, body: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        self._maybe_fail("create")
        kind, meta = body["kind"], body["metadata"]
        if (kind, meta["namespace"], meta["name"]) in self.objects:
            raise ApiError(409, "AlreadyExists", "exists")
        if dry_run:
            return copy.deepcopy(body)
        self.writes.append(("create", kind, meta["name"]))
        return self._store(kind, body)

    async def replace(self, body: dict[str, Any]) -> dict[str, Any]:
        self._maybe_fail("replace")
        self.writes.append(("replace", body["kind"], body["metadata"]["name"]))
        return self._store(body["kind"], body)

    async def patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any]
                    ) -> dict[str, Any]:
        self._maybe_fail("patch")
        self.writes.append(("patch", kind, name))
        if (kind, namespace, name) not in self.objects:
            raise ApiError(404, "NotFound", "not found")
        body = merged(copy.deepcopy(self.objects[(kind, namespace, name)]), patch)
        return self._store(kind, body)

    async def patch_status(self, kind: str, namespace: str, name: str,
                           status: dict[str, Any]) -> dict[str, Any]:
        self._maybe_fail("patch_status")
        self.writes.append(("patch-status", kind, name))
        if (kind, namespace, name) not in self.objects:
            raise ApiError(404, "NotFound", "not found")
        body = copy.deepcopy(self.objects[(kind, namespace, name)])
        body["status"] = {**(body.get("status") or {}), **status}
        return self._store(kind, body)

    async def delete(self, kind: str, namespace: str, name: str, uid: str | None = None
                     ) -> None:
        self._maybe_fail("delete")
        self.writes.append(("delete", kind, name))
        if self.objects.pop((kind, namespace, name), None) is None:
            raise ApiError(404, "NotFound", "not found")

    async def post_event(self, regarding: dict[str, Any], kind: str, type_: str, reason: str,
                         note: str, now: str) -> None:
        self._maybe_fail("post_event")
        self.events.append({"name": regarding["metadata"]["name"], "kind": kind,
                            "type": type_, "reason": reason, "note": note})

    async def exists(self, kind: str, namespace: str, name: str) -> bool:
        return (kind, namespace, name) in self.objects


class World:
    """A FakeKube, a synced cache fed from it, and a controller over both."""

    def __init__(self) -> None:
        self.kube = FakeKube()
        self.cache = Cache()
        self.cache.expect(set())
        self.controller = Controller(self.kube, self.cache)  # type: ignore[arg-type]

    def add(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        body.setdefault("metadata", {}).setdefault("namespace", NS)
        stored = self.kube._store(kind, body)
        self.cache.put(kind, NS, stored)
        return stored

    def shardset(self, name: str, node_id: str, schema: list[dict[str, Any]],
                 created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
        return self.add("ShardSet", {
            "apiVersion": "shards.anoma.net/v1alpha1", "kind": "ShardSet",
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"nodeId": node_id, "schema": schema}})

    def pods_ready(self) -> None:
        """Every Pod Running and Ready, as the kubelet (KWOK) would report."""
        for (kind, _, _), body in list(self.kube.objects.items()):
            if kind == "Pod":
                body["status"] = {"phase": "Running",
                                  "conditions": [{"type": "Ready", "status": "True"}]}
                self.cache.put("Pod", NS, self.kube._store("Pod", body))

    async def reconcile(self, node_id: str = "node-1") -> list[str]:
        return await self.controller.reconcile(NS, node_id)

    def status(self, kind: str, name: str) -> dict[str, Any]:
        return (self.kube.stored(kind, name) or {}).get("status") or {}

    def condition(self, kind: str, name: str, type_: str) -> dict[str, Any]:
        return next(c for c in self.status(kind, name).get("conditions", [])
                    if c["type"] == type_)

    def names(self, kind: str) -> list[str]:
        return sorted(n for (k, _, n) in self.kube.objects if k == kind)


# ----- a converged ShardSet whose template then changes (the rollout tests) -----


class Watched(World):
    """A World whose deletions reach the cache a moment later, as a watch event would."""

    def __init__(self, delay: float | None = 0.01) -> None:
        super().__init__()
        delete = self.kube.delete

        async def deleting(kind: str, namespace: str, name: str, uid: str | None = None
                           ) -> None:
            self.deleted.append(name)
            await delete(kind, namespace, name, uid)
            if delay is not None:
                asyncio.get_running_loop().call_later(
                    delay, self.cache.remove, kind, namespace, name, uid)

        self.deleted: list[str] = []
        self.kube.delete = deleting  # type: ignore[method-assign]


async def converged(world: World, n: int, max_unavailable: int | str = 1) -> None:
    world.add("ShardSet", {
        "apiVersion": "shards.anoma.net/v1alpha1", "kind": "ShardSet",
        "metadata": {"name": "set", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"nodeId": "node-1", "schema": [{"key": [f"k{i}"]} for i in range(n)],
                 "updateStrategy": {"type": "RollingUpdate",
                                    "rollingUpdate": {"maxUnavailable": max_unavailable}}}})
    await world.reconcile()
    world.pods_ready()
    assert await world.reconcile() == []


def change_template(world: World) -> None:
    body = copy.deepcopy(world.kube.stored("ShardSet", "set"))
    body["spec"]["template"] = {"spec": {"containers": [{"name": "shard", "image": "new:2"}]}}
    body["metadata"]["generation"] = 2
    world.cache.put("ShardSet", NS, world.kube._store("ShardSet", body))
