"""kopf wiring: watch events fill the cache and enqueue the node id they concern; the
controller does the rest. No kopf change-handlers are used, so kopf keeps no progress
or diff-base annotations on any object (a 10,000-key spec never lands in metadata),
and the operator writes nothing but ``status`` on ShardSets and Shards."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from .cache import Cache
from .controller import Controller
from .kube import WATCHED, Kube, Resource, load_config
from .kubeconfig import kopf_login
from .metrics import observe_request

log = logging.getLogger("shard_operator")


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf's diff base is only read by change handlers, and this operator has none; the
    default storage still deep-copies every object on every watch event (measured alone:
    0.59 ms per Pod event; converging 1,000 shards about 12 % faster without it, see
    docs/performance.md). Build nothing instead."""

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
    namespaces: list[str] | None = None  # None: every namespace
    # Called at cleanup once the controller has stopped: closes the write fence and
    # releases the leader Lease (see cli/operator.py), so that a standby takes over
    # before kopf has finished its own shutdown.
    on_stopped: Callable[[], Awaitable[None]] | None = None


# kopf logs in with the operator's own loader: no client library is installed for it to
# piggyback on, and its rudimentary fallback knows no exec plugins nor a rotating token.
kopf.on.login(id="kubeconfig")(kopf_login)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Nothing of kopf's own is stored on the objects, and its log lines are not
    # posted as Kubernetes events (the controller posts the events users need).
    settings.posting.enabled = False
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # List in pages when a watch starts or restarts (after "410 Gone"): kopf's default
    # is one response for everything, and 5,000 Pods parsed at once held ~150 MB in a
    # tracemalloc profile (the largest peak seen); kopf keeps one page at a time.
    settings.watching.chunk_size = 500
    # No worker limit: kopf runs one worker per object; a limit below the number of
    # objects held back events behind the initial listing (a restart at 300 shards
    # deadlocked, found by tests/reliability/test_crash_consistency.py).
    settings.batching.worker_limit = None
    Runtime.kube = Kube(await load_config(), record=observe_request)
    Runtime.cache.expect(await initial_listing(Runtime.kube, Runtime.namespaces))
    Runtime.controller = Controller(Runtime.kube, Runtime.cache)
    Runtime.controller.start()


async def initial_listing(kube: Kube, namespaces: list[str] | None
                          ) -> set[tuple[str, str, str]]:
    """What exists now: the controller's first pass waits until the watches have
    delivered all of it (kopf's own index gating does the same, but costs O(n²) at
    start-up: 10,000 shards took minutes)."""
    found: set[tuple[str, str, str]] = set()
    scopes: list[str | None] = [*namespaces] if namespaces else [None]
    for resource in WATCHED:
        kind = resource.kind
        for namespace in scopes:
            found.update((kind, ns, name) for ns, name in await kube.list_names(kind, namespace)
                         if Cache.relevant(kind, name))
    return found


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if Runtime.controller is not None:
        await Runtime.controller.stop()
    if Runtime.on_stopped is not None:
        await Runtime.on_stopped()
    if Runtime.kube is not None:
        await Runtime.kube.close()


def _register(resource: Resource) -> None:
    kind = resource.kind

    def relevant(name: str, **_: Any) -> bool:
        return Cache.relevant(kind, name)

    # The handler is a coroutine on purpose: kopf runs plain functions in a thread pool,
    # and the cache and the work queue belong to the event loop's thread.
    @kopf.on.event(resource.group, resource.version, resource.plural, when=relevant,
                   id=f"watch-{kind}")
    async def watch(event: kopf.RawEvent, body: kopf.Body, name: str, namespace: str | None,
                    **_: Any) -> None:
        assert namespace is not None  # every watched kind is namespaced
        node_id = Runtime.cache.node_of(kind, namespace, name, dict(body))
        if event.get("type") == "DELETED":
            Runtime.cache.remove(kind, namespace, name, uid=body.get("metadata", {}).get("uid"))
        else:
            Runtime.cache.put(kind, namespace, dict(body))
        if Runtime.controller is not None:
            Runtime.controller.enqueue(namespace, node_id)


for _resource in WATCHED:
    _register(_resource)
