"""kopf wiring: watch events fill the cache and enqueue the node id they concern; the
controller does the rest. No kopf change-handlers are used, so kopf keeps no progress
or diff-base annotations on any object (a 10,000-key spec never lands in metadata),
and the operator writes nothing but ``status`` on ShardSets and Shards."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from .cache import Cache
from .constants import GROUP, SHARDS, SHARDSETS, VERSION
from .controller import Controller
from .kube import Kube, load_config

log = logging.getLogger("shard_operator")


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf's diff base is only read by change handlers, and this operator has none; the
    default storage still deep-copies every object on every watch event (profiled: about
    a fifth of the operator's CPU while converging 1,000 shards). Build nothing instead."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        return {}

    def fetch(self, *, body: kopf.Body) -> Any:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        return None


class Runtime:
    """The operator's state for one process (set at startup)."""

    cache = Cache()
    controller: Controller | None = None
    kube: Kube | None = None


RESOURCES: dict[str, tuple[str, str, str]] = {
    "ShardSet": (GROUP, VERSION, SHARDSETS),
    "Shard": (GROUP, VERSION, SHARDS),
    "Pod": ("", "v1", "pods"),
    "Service": ("", "v1", "services"),
    "ConfigMap": ("", "v1", "configmaps"),
}


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Nothing of kopf's own is stored on the objects, and its log lines are not
    # posted as Kubernetes events (the controller posts the events users need).
    settings.posting.enabled = False
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # No worker limit: kopf runs one worker per object, and until every initial listing
    # is indexed those workers wait; a limit below the number of objects deadlocks a
    # restart (tests/reliability/test_crash_consistency.py found it at 300 shards).
    settings.batching.worker_limit = None
    Runtime.kube = Kube(await load_config())
    Runtime.controller = Controller(Runtime.kube, Runtime.cache)
    Runtime.controller.start()


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if Runtime.controller is not None:
        await Runtime.controller.stop()
    if Runtime.kube is not None:
        await Runtime.kube.close()


def _register(kind: str) -> None:
    group, version, plural = RESOURCES[kind]

    def relevant(name: str, **_: Any) -> bool:
        return Cache.relevant(kind, name)

    # Indexing handlers run before every other handler, and kopf holds the others back
    # until every index has seen its initial listing: the first reconcile starts from a
    # complete cache. The returned None keeps kopf's own index empty.
    # Both handlers are coroutines on purpose: kopf runs plain functions in a thread
    # pool, and the cache and the work queue belong to the event loop's thread.
    @kopf.index(group, version, plural, when=relevant, id=f"cache-{kind}")
    async def cache_object(body: kopf.Body, namespace: str, **_: Any) -> None:
        Runtime.cache.put(kind, namespace, dict(body))
        return None

    @kopf.on.event(group, version, plural, when=relevant, id=f"enqueue-{kind}")
    async def enqueue(event: dict[str, Any], body: kopf.Body, name: str, namespace: str,
                      **_: Any) -> None:
        node_id = Runtime.cache.node_of(kind, namespace, name, dict(body))
        if event.get("type") == "DELETED":
            Runtime.cache.remove(kind, namespace, name, uid=body.get("metadata", {}).get("uid"))
        if Runtime.controller is not None:
            Runtime.controller.enqueue(namespace, node_id)


for _kind in RESOURCES:
    _register(_kind)
