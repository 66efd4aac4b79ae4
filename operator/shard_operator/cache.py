"""What the operator has observed, fed by watch events: small views of each object,
indexed by namespace and node id. Handlers write here; the controller only reads."""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .constants import (
    ANNOTATION_TEMPLATE_HASH,
    BUDGET_PREFIX,
    GROUP,
    KEY_MAP_PREFIX,
    LABEL_ORIGIN,
    NETPOL_PREFIX,
)
from .failing import last_failure
from .keys import HASH_CHARS, InvalidKey, Key, decode_segments
from .spec import ShardSetSpec

SHARD_NAME = re.compile(rf"^([a-z]([-a-z0-9]*[a-z0-9])?)-[a-z2-7]{{{HASH_CHARS}}}$")


def node_of_shard_name(name: str) -> str | None:
    """``node-1-abcdefghijklmnop`` → ``node-1``; None for names we never make."""
    match = SHARD_NAME.match(name)
    return match.group(1) if match else None


def shared(value: Any) -> Any:
    """``value`` rebuilt with its strings interned, for what the views keep.

    Each watch event is parsed on its own, so every view held its own copy of the same
    label keys and values, annotation keys, port fields, condition types and reasons:
    the JSON decoder's strings were 60 % of the cache at N = 5,000 (22.6 of 36 MB for
    the Shards, Pods and Services, measured with tracemalloc). Interned, the views of all
    shards share one copy of each; names and uids cost one slot in the interning table."""
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, dict):
        return {shared(k): shared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shared(v) for v in value]
    return value


def _metadata(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: sys.intern(meta[k]) for k in ("name", "namespace", "uid")}


def _owner_uids(meta: dict[str, Any], kind: str) -> tuple[str, ...]:
    return tuple(ref.get("uid", "") for ref in meta.get("ownerReferences") or []
                 if ref.get("kind") == kind and ref.get("apiVersion", "").startswith(GROUP))


@dataclass(slots=True)
class ShardSetView:
    name: str
    uid: str
    generation: int
    created: str
    node_id: str
    spec: ShardSetSpec  # parsed once per generation
    body: dict[str, Any]  # metadata (name, namespace, uid): owner references and events
    status: dict[str, Any]
    deleting: bool

    @classmethod
    def of(cls, body: dict[str, Any], previous: ShardSetView | None = None) -> ShardSetView:
        """The view of ``body``; the spec of ``previous`` is kept when it is the same
        object at the same generation (a status write does not re-parse a 10,000-entry
        schema)."""
        meta = body["metadata"]
        generation = meta.get("generation", 0)
        if previous is not None and (previous.uid, previous.generation) == (
                meta["uid"], generation):
            spec = previous.spec
        else:
            spec = ShardSetSpec.of(body.get("spec"))
        return cls(name=meta["name"], uid=meta["uid"], generation=generation,
                   created=meta.get("creationTimestamp", ""), node_id=spec.node_id, spec=spec,
                   body={"metadata": _metadata(meta)},
                   status=dict(body.get("status") or {}),
                   deleting=bool(meta.get("deletionTimestamp")))


@dataclass(slots=True)
class ShardView:
    name: str
    uid: str
    generation: int
    created: str
    node_id: str
    key: Key | None  # None if the spec cannot be decoded
    origin: str
    owners: tuple[str, ...]
    body: dict[str, Any]
    status: dict[str, Any]
    deleting: bool

    @classmethod
    def of(cls, body: dict[str, Any]) -> ShardView:
        meta, spec = body["metadata"], shared(body.get("spec") or {})
        try:
            key: Key | None = decode_segments(spec.get("key") or [],
                                              spec.get("keyEncoding", "utf8"))
        except InvalidKey:
            key = None
        metadata = _metadata(meta)
        return cls(name=metadata["name"], uid=metadata["uid"],
                   generation=meta.get("generation", 0),
                   created=sys.intern(meta.get("creationTimestamp", "")),
                   node_id=spec.get("nodeId", ""), key=key,
                   origin=sys.intern((meta.get("labels") or {}).get(LABEL_ORIGIN, "")),
                   owners=_owner_uids(meta, "ShardSet"),
                   body={"metadata": metadata, "spec": spec},
                   status=shared(body.get("status") or {}),
                   deleting=bool(meta.get("deletionTimestamp")))


@dataclass(slots=True)
class PodView:
    name: str
    uid: str
    labels: dict[str, str]
    annotations: dict[str, str]
    owners: tuple[str, ...]
    phase: str
    ready: bool
    restarts: int
    waiting_reason: str
    deleting: bool
    last_failure: float | None = None

    @property
    def template_hash(self) -> str:
        return self.annotations.get(ANNOTATION_TEMPLATE_HASH, "")

    @classmethod
    def of(cls, body: dict[str, Any]) -> PodView:
        meta, status = body["metadata"], body.get("status") or {}
        statuses = status.get("containerStatuses") or []
        waiting = next((s["state"]["waiting"].get("reason", "") for s in statuses
                        if (s.get("state") or {}).get("waiting")), "")
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in status.get("conditions") or [])
        return cls(name=sys.intern(meta["name"]), uid=meta["uid"],
                   labels=shared(meta.get("labels") or {}),
                   annotations=shared(meta.get("annotations") or {}),
                   owners=_owner_uids(meta, "Shard"),
                   phase=sys.intern(status.get("phase", "Pending")),
                   ready=ready, restarts=sum(s.get("restartCount", 0) for s in statuses),
                   waiting_reason=sys.intern(waiting), deleting=bool(meta.get("deletionTimestamp")),
                   last_failure=last_failure(statuses))


@dataclass(slots=True)
class ServiceView:
    name: str
    uid: str
    labels: dict[str, str]
    annotations: dict[str, str]
    owners: tuple[str, ...]
    selector: dict[str, str]
    ports: list[dict[str, Any]]
    deleting: bool

    @classmethod
    def of(cls, body: dict[str, Any]) -> ServiceView:
        meta, spec = body["metadata"], body.get("spec") or {}
        return cls(name=sys.intern(meta["name"]), uid=meta["uid"],
                   labels=shared(meta.get("labels") or {}),
                   annotations=shared(meta.get("annotations") or {}),
                   owners=_owner_uids(meta, "Shard"), selector=shared(spec.get("selector") or {}),
                   ports=shared(spec.get("ports") or []),
                   deleting=bool(meta.get("deletionTimestamp")))


@dataclass(slots=True)
class ConfigMapView:
    name: str
    uid: str
    labels: dict[str, str]
    owners: tuple[str, ...]
    data: dict[str, str]

    @classmethod
    def of(cls, body: dict[str, Any]) -> ConfigMapView:
        meta = body["metadata"]
        return cls(name=meta["name"], uid=meta["uid"], labels=dict(meta.get("labels") or {}),
                   owners=_owner_uids(meta, "ShardSet"), data=dict(body.get("data") or {}))


@dataclass(slots=True)
class ClaimView:
    """A shard's PersistentVolumeClaim (named after the Shard)."""

    name: str
    uid: str
    labels: dict[str, str]
    owner_references: list[dict[str, Any]]
    storage: str | None  # the requested size
    capacity: str | None  # the bound volume's size
    phase: str  # Pending, Bound, Lost
    resize_problem: str  # a failed or refused resize, from the claim's conditions
    deleting: bool
    storage_class: str | None = None
    access_modes: tuple[str, ...] = ()

    @classmethod
    def of(cls, body: dict[str, Any]) -> ClaimView:
        meta, spec = body["metadata"], body.get("spec") or {}
        status = body.get("status") or {}
        problem = next((f"{c.get('type')}: {c.get('message', '')}"
                        for c in status.get("conditions") or []
                        if c.get("type") in ("ControllerResizeError", "NodeResizeError")), "")
        return cls(name=meta["name"], uid=meta["uid"], labels=dict(meta.get("labels") or {}),
                   owner_references=list(meta.get("ownerReferences") or []),
                   storage=((spec.get("resources") or {}).get("requests") or {}).get("storage"),
                   capacity=(status.get("capacity") or {}).get("storage"),
                   phase=status.get("phase", "Pending"), resize_problem=problem,
                   deleting=bool(meta.get("deletionTimestamp")),
                   storage_class=spec.get("storageClassName"),
                   access_modes=tuple(spec.get("accessModes") or ()))

    def as_object(self) -> dict[str, Any]:
        """What :func:`shard_operator.volumes.claim_change` compares."""
        return {"metadata": {"name": self.name, "labels": self.labels,
                             "ownerReferences": self.owner_references},
                "spec": {"resources": {"requests": {"storage": self.storage}},
                         "storageClassName": self.storage_class,
                         "accessModes": list(self.access_modes)}}


@dataclass(slots=True)
class BudgetView:
    """The ShardSet's PodDisruptionBudget."""

    name: str
    uid: str
    spec: dict[str, Any]
    owners: tuple[str, ...]
    deleting: bool

    @classmethod
    def of(cls, body: dict[str, Any]) -> BudgetView:
        meta = body["metadata"]
        return cls(name=meta["name"], uid=meta["uid"], spec=dict(body.get("spec") or {}),
                   owners=_owner_uids(meta, "ShardSet"),
                   deleting=bool(meta.get("deletionTimestamp")))


@dataclass(slots=True)
class NetworkPolicyView:
    """The ShardSet's NetworkPolicy (``shard-clients-<nodeId>``)."""

    name: str
    uid: str
    labels: dict[str, str]
    owner_references: list[dict[str, Any]]
    spec: dict[str, Any]
    deleting: bool

    @classmethod
    def of(cls, body: dict[str, Any]) -> NetworkPolicyView:
        meta = body["metadata"]
        return cls(name=meta["name"], uid=meta["uid"], labels=dict(meta.get("labels") or {}),
                   owner_references=list(meta.get("ownerReferences") or []),
                   spec=dict(body.get("spec") or {}),
                   deleting=bool(meta.get("deletionTimestamp")))

    def as_object(self) -> dict[str, Any]:
        """What :func:`shard_operator.netpol.policy_patch` compares."""
        return {"metadata": {"name": self.name, "labels": self.labels,
                             "ownerReferences": self.owner_references},
                "spec": self.spec}


def _version(meta: dict[str, Any]) -> int | None:
    """The resourceVersion as a number (etcd's revision), or None if it is not one."""
    value = meta.get("resourceVersion", "")
    return int(value) if value.isdigit() else None


VIEWS: dict[str, Any] = {"ShardSet": ShardSetView, "Shard": ShardView, "Pod": PodView,
                         "Service": ServiceView, "ConfigMap": ConfigMapView,
                         "PersistentVolumeClaim": ClaimView, "PodDisruptionBudget": BudgetView,
                         "NetworkPolicy": NetworkPolicyView}
SHARD_NAMED = ("Pod", "Service", "PersistentVolumeClaim")  # named after their Shard


@dataclass(slots=True, eq=False, weakref_slot=True)  # one per controller: desired.of(cache)
class Cache:
    """Views by kind → namespace → name, plus ShardSets and Shards by node id."""

    objects: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {kind: defaultdict(dict) for kind in VIEWS})
    shards_by_node: dict[tuple[str, str], set[str]] = field(
        default_factory=lambda: defaultdict(set))
    sets_by_node: dict[tuple[str, str], set[str]] = field(
        default_factory=lambda: defaultdict(set))
    versions: dict[tuple[str, str, str], tuple[str, int]] = field(default_factory=dict)
    # Objects the start-up listing found that no watch event has delivered yet; the
    # controller waits for this to empty before its first pass (None: not waiting).
    pending: set[tuple[str, str, str]] | None = None

    def expect(self, objects: set[tuple[str, str, str]]) -> None:
        """Wait for these ``(kind, namespace, name)`` before the cache counts as synced."""
        self.pending = {o for o in objects
                        if o[1] not in self.objects[o[0]] or o[2] not in self.objects[o[0]][o[1]]}

    @property
    def synced(self) -> bool:
        return self.pending is not None and not self.pending

    def forget_pending(self, kind: str, namespace: str, name: str) -> None:
        if self.pending is not None:
            self.pending.discard((kind, namespace, name))

    @staticmethod
    def relevant(kind: str, name: str) -> bool:
        """Whether the operator keeps this object: its own kinds, shard-named Pods,
        Services and claims, key-map ConfigMaps, shard budgets and client policies."""
        if kind in SHARD_NAMED:
            return node_of_shard_name(name) is not None
        if kind == "ConfigMap":
            return name.startswith(KEY_MAP_PREFIX)
        if kind == "PodDisruptionBudget":
            return name.startswith(BUDGET_PREFIX)
        if kind == "NetworkPolicy":
            return name.startswith(NETPOL_PREFIX)
        return True

    def node_of(self, kind: str, namespace: str, name: str, body: dict[str, Any] | None = None
                ) -> str | None:
        """The node id an object belongs to (what to reconcile when it changes)."""
        if kind in ("ShardSet", "Shard"):
            view = self.objects[kind][namespace].get(name)
            if view is not None:
                return view.node_id
            return ((body or {}).get("spec") or {}).get("nodeId")
        if kind in SHARD_NAMED:
            return node_of_shard_name(name)
        if kind == "ConfigMap":
            return name[len(KEY_MAP_PREFIX):] if name.startswith(KEY_MAP_PREFIX) else None
        if kind == "PodDisruptionBudget":
            return name[len(BUDGET_PREFIX):] if name.startswith(BUDGET_PREFIX) else None
        if kind == "NetworkPolicy":
            return name[len(NETPOL_PREFIX):] if name.startswith(NETPOL_PREFIX) else None
        return None

    def put(self, kind: str, namespace: str, body: dict[str, Any]) -> Any:
        """Record an object, unless it is older than what is known of it already.

        The controller records the answers to its own writes at once, so a watch event
        still in flight from before such a write must not roll the cache back (a stale
        view would trigger the same write again)."""
        meta = body["metadata"]
        self.forget_pending(kind, namespace, meta["name"])
        previous = self.objects[kind][namespace].get(meta["name"])
        version = _version(meta)
        known = self.versions.get((kind, namespace, meta["name"]))
        if previous is not None and known is not None and known[0] == meta.get("uid") and (
                version is not None and version < known[1]):
            return previous
        view = (ShardSetView.of(body, previous) if kind == "ShardSet"
                else VIEWS[kind].of(body))
        self._unindex(kind, namespace, previous)
        self.objects[kind][namespace][view.name] = view
        if version is not None:
            self.versions[(kind, namespace, view.name)] = (view.uid, version)
        self._index(kind, namespace, view)
        return view

    def remove(self, kind: str, namespace: str, name: str, uid: str | None = None) -> None:
        """Forget an object; with ``uid``, only that incarnation of it."""
        self.forget_pending(kind, namespace, name)
        current = self.objects[kind][namespace].get(name)
        if current is None or (uid is not None and current.uid != uid):
            return
        self._unindex(kind, namespace, current)
        del self.objects[kind][namespace][name]
        self.versions.pop((kind, namespace, name), None)

    def size(self) -> int:
        return sum(len(names) for kinds in self.objects.values() for names in kinds.values())

    def get(self, kind: str, namespace: str, name: str) -> Any:
        return self.objects[kind][namespace].get(name)

    def shardsets(self, namespace: str, node_id: str) -> list[ShardSetView]:
        names = self.sets_by_node.get((namespace, node_id), ())
        views = [self.objects["ShardSet"][namespace][n] for n in names]
        return sorted(views, key=lambda v: (v.created, v.name))

    def shards(self, namespace: str, node_id: str) -> list[ShardView]:
        names = self.shards_by_node.get((namespace, node_id), ())
        return [self.objects["Shard"][namespace][n] for n in sorted(names)]

    def nodes(self) -> set[tuple[str, str]]:
        return {k for k, v in self.sets_by_node.items() if v} | {
            k for k, v in self.shards_by_node.items() if v}

    def _index(self, kind: str, namespace: str, view: Any) -> None:
        if kind == "ShardSet":
            self.sets_by_node[(namespace, view.node_id)].add(view.name)
        elif kind == "Shard":
            self.shards_by_node[(namespace, view.node_id)].add(view.name)

    def _unindex(self, kind: str, namespace: str, view: Any) -> None:
        if view is None:
            return
        index = {"ShardSet": self.sets_by_node, "Shard": self.shards_by_node}.get(kind)
        if index is not None:
            index[(namespace, view.node_id)].discard(view.name)
