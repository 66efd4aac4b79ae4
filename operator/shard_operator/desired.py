"""What a ShardSet's generation asks for, worked out once and reused by every pass: its
schema's Shards, each Shard's Service and Pod, and what was already found current.

A pass looks at every shard, but between two generations of the ShardSet (and two of
a Shard) what :mod:`.render` makes of them cannot change: a pass during a rollout of
1,000 shards would otherwise render, deep-copy and hash 1,000 Pods, and compare 1,000
statuses, to replace one. Each memo is keyed by everything its result depends on: the
objects' uids and generations, the very spec object the cache parsed for that
generation (compared by identity: it is kept referenced here), the namespace, whether
claims are used, the default shard image. A hit is the value a fresh computation would
give. Rendered bodies are shared: callers must not change them (the writes send them
as they are).

One :class:`Desired` per :class:`~.cache.Cache` (:func:`of`), so two controllers (or
two tests) never share memos.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

from . import render
from .cache import Cache, ShardSetView, ShardView
from .constants import ANNOTATION_TEMPLATE_HASH
from .decisions import same_inputs
from .keys import Key
from .spec import ShardSetSpec

Wanted = dict[str, tuple[Key, dict[str, Any]]]
NodeKey = tuple[str, str]  # (namespace, node id)


@dataclass(eq=False)
class Workload:
    """A Shard's desired Service and Pod, and the views of them last found matching
    (nothing to restore): while the cache holds those same views, there is nothing to
    look at again.

    The bodies are rendered when asked for, not kept (at N = 5,000 the rendered Pods
    and Services of every shard held 34 MB for as long as the shards lived, and the
    first pass rendered them all before it created any): a Service is rendered on each
    use (13 µs), the Pod once for its creation or comparison and then handed over. The
    Pod is kept only once a matching Pod was seen and a pass asks for it again (the
    replacement of an outdated Pod during a rollout, asked for by every pass), and
    dropped when that Pod is found current again. The template hash is rendered with
    the Pod and kept."""
    fingerprint: tuple[Any, ...]
    spec: ShardSetSpec  # the ShardSet spec it was rendered from (compared by identity)
    shard_body: dict[str, Any]  # the Shard's metadata and spec (the view's, not a copy)
    key: Key
    claim: bool
    service_seen: Any = None  # a ServiceView needing no patch
    pod_seen: Any = None  # a PodView needing no patch
    _pod: dict[str, Any] | None = field(default=None, repr=False)
    _template_hash: str | None = field(default=None, repr=False)

    def _full(self) -> dict[str, Any]:
        return {"metadata": {**self.shard_body["metadata"]}, "spec": self.shard_body["spec"]}

    def _render_pod(self) -> dict[str, Any]:
        pod = render.pod(self._full(), self.key, self.spec.template, claim=self.claim)
        self._template_hash = pod["metadata"]["annotations"][ANNOTATION_TEMPLATE_HASH]
        return pod

    @property
    def service(self) -> dict[str, Any]:
        return render.service(self._full(), self.key)

    @property
    def pod(self) -> dict[str, Any]:
        pod = self._pod if self._pod is not None else self._render_pod()
        self._pod = pod if self.pod_seen is not None else None
        return pod

    @property
    def template_hash(self) -> str:
        if self._template_hash is None:
            self._render_pod()
        assert self._template_hash is not None
        return self._template_hash

    def unchanged(self, service: Any, pod: Any) -> bool:
        """Both views are the ones found matching last time."""
        same = service is not None and service is self.service_seen and (
            pod is not None and pod is self.pod_seen) and not (pod.deleting or service.deleting)
        if same and self._pod is not None and pod.template_hash == self._template_hash:
            self._pod = None  # current again: no replacement to make
        return same


def _generation(owner: ShardSetView) -> tuple[str, int]:
    return owner.uid, owner.generation


@dataclass
class Desired:
    """The memos of one cache, by (namespace, node id); a shard's entries are replaced
    on its next change and dropped when it goes (:meth:`keep_only`)."""

    schemas: dict[NodeKey, tuple[tuple[str, int], ShardSetSpec, Wanted, list[str]]] = field(
        default_factory=dict)
    workloads: dict[NodeKey, dict[str, Workload]] = field(default_factory=dict)
    # shard name -> the inputs its current status was found from
    statuses: dict[NodeKey, dict[str, Any]] = field(default_factory=dict)
    # the generation (and spec) whose Pod a dry run admitted
    admissions: dict[NodeKey, tuple[tuple[str, int], ShardSetSpec]] = field(
        default_factory=dict)

    def schema_shards(self, owner: ShardSetView, namespace: str) -> tuple[Wanted, list[str]]:
        """:func:`render.schema_shards` of ``owner``'s generation (a fresh dict and list:
        the caller may add to them)."""
        memo = self.schemas.get((namespace, owner.node_id))
        if memo is None or memo[0] != _generation(owner) or memo[1] is not owner.spec:
            wanted, problems = render.schema_shards(owner.spec, owner.body, namespace)
            memo = (_generation(owner), owner.spec, wanted, problems)
            self.schemas[(namespace, owner.node_id)] = memo
        return dict(memo[2]), list(memo[3])

    def workload(self, shard: ShardView, owner: ShardSetView, namespace: str, *, claim: bool
                 ) -> Workload:
        """The Shard's desired Service and Pod, and the Pod's template hash."""
        assert shard.key is not None
        fingerprint = (shard.uid, shard.generation, *_generation(owner), claim,
                       render.shard_image)
        memos = self.workloads.setdefault((namespace, shard.node_id), {})
        memo = memos.get(shard.name)
        if memo is None or memo.fingerprint != fingerprint or memo.spec is not owner.spec:
            memo = Workload(fingerprint, owner.spec, shard.body, shard.key, claim)
            memos[shard.name] = memo
        return memo

    def status_unchanged(self, namespace: str, shard: ShardView, inputs: Any) -> bool:
        """A pass found this Shard's status current with these very inputs
        (:func:`decisions.shard_status_inputs`)."""
        return same_inputs(self.statuses.get((namespace, shard.node_id), {}).get(shard.name),
                           inputs)

    def status_current(self, namespace: str, shard: ShardView, inputs: Any) -> None:
        self.statuses.setdefault((namespace, shard.node_id), {})[shard.name] = inputs

    def admitted(self, namespace: str, owner: ShardSetView) -> bool:
        """The API server admitted (dry run) a Pod of ``owner``'s current generation."""
        memo = self.admissions.get((namespace, owner.node_id))
        return memo is not None and memo[0] == _generation(owner) and memo[1] is owner.spec

    def admit(self, namespace: str, owner: ShardSetView) -> None:
        self.admissions[(namespace, owner.node_id)] = (_generation(owner), owner.spec)

    def forget_admitted(self, namespace: str, owner: ShardSetView) -> None:
        self.admissions.pop((namespace, owner.node_id), None)

    def keep_only(self, namespace: str, node_id: str, names: set[str]) -> None:
        """Forget the memos of ``node_id``'s shards that are not in ``names``."""
        for table in (self.workloads, self.statuses):
            memos = table.get((namespace, node_id))
            if memos is not None and len(memos) > len(names):
                table[(namespace, node_id)] = {n: m for n, m in memos.items() if n in names}


_BY_CACHE: weakref.WeakKeyDictionary[Cache, Desired] = weakref.WeakKeyDictionary()


def of(cache: Cache) -> Desired:
    """The memos that go with ``cache`` (made on first use, dropped with it)."""
    found = _BY_CACHE.get(cache)
    if found is None:
        found = _BY_CACHE[cache] = Desired()
    return found
