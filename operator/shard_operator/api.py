"""``start_shard`` and ``get_shard_key_map``: the supervisor's API, on Kubernetes.

``start_shard`` creates a Shard owned by the node's ShardSet and returns once the
operator has listed it in the key map. Async versions (``astart_shard``) are the
primitives; the plain functions run them in a private event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator
from typing import Any

from . import keymap, render
from .cache import ShardView
from .constants import INITIAL_VALUE_MAX_BYTES, ORIGIN_STARTED
from .errors import (
    AlreadyStarted,
    HashCollision,
    InvalidInput,
    KeyMapUnavailable,
    KeyMapUpdateFailed,
    KeyNotFound,
    NoShardSet,
    StartTimeout,
)
from .keys import (
    InvalidKey,
    Key,
    KeySegments,
    key_map_name,
    shard_address,
    shard_name,
    to_key,
    validate_node_id,
)
from .kube import ApiError, Kube, load_config
from .missing import MISSING
from .reasons import (
    KEY_MAP_PENDING,
    SHARD_DELETED,
    TERMINAL_REGISTRATION_FAILURES,
    TYPE_REGISTERED,
)
from .spec import ShardSetSpec


def get_shard_key_map(node_id: str) -> str:
    """The name of the ConfigMap holding the node's key → shard map."""
    return key_map_name(_node(node_id))


def _node(node_id: str) -> str:
    try:
        return validate_node_id(node_id)
    except InvalidKey as error:
        raise InvalidInput(str(error)) from None


def _key(key: KeySegments) -> tuple[Key, list[str], str]:
    if isinstance(key, (str, bytes)):
        raise InvalidInput("a key is a list of segments, e.g. ['a', 'b'], not a single string")
    try:
        return to_key(list(key))
    except InvalidKey as error:
        raise InvalidInput(f"invalid key: {error}") from None


def _json_value(value: Any) -> None:
    """Refuse initial values that are not plain JSON (NaN, Infinity, sets, objects...)."""
    if value is MISSING:
        return
    try:
        size = len(json.dumps(value, allow_nan=False, separators=(",", ":")).encode())
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"the initial value is not JSON: {error}") from None
    if size > INITIAL_VALUE_MAX_BYTES:
        raise InvalidInput(f"the initial value is {size} bytes of JSON, over the "
                           f"{INITIAL_VALUE_MAX_BYTES}-byte limit")


def validate_start(node_id: str, key: KeySegments, initial_value: Any = MISSING) -> None:
    """Refuse (InvalidInput) what ``start_shard`` would refuse before any API call."""
    _node(node_id)
    _key(key)
    _json_value(initial_value)


async def _find_shardset(kube: Kube, namespace: str, node_id: str) -> dict[str, Any]:
    """The ShardSet that owns ``node_id`` (the oldest, as the operator decides). The API
    server selects it by ``spec.nodeId`` (a selectable field of the CRD), so a call
    costs the matching ShardSets only, not every ShardSet with its whole schema."""
    listed = await kube.list("ShardSet", namespace, field_selector=f"spec.nodeId={node_id}")
    sets = [s for s in listed.get("items", [])
            if ShardSetSpec.of(s.get("spec")).node_id == node_id
            and not s["metadata"].get("deletionTimestamp")]
    if not sets:
        raise NoShardSet(node_id, namespace)
    return min(sets, key=lambda s: (s["metadata"]["creationTimestamp"], s["metadata"]["name"]))


async def astart_shard(node_id: str, key: KeySegments, initial_value: Any = MISSING, *,
                       namespace: str = "default", timeout: float = 60.0,
                       kube: Kube | None = None) -> str:
    """Start a shard for ``key``; returns its Service address once it is in the key map.

    ``initial_value`` is any JSON value, ``None`` being null; leave it out (``MISSING``)
    for a shard with no initial value.

    Raises NoShardSet, AlreadyStarted (naming the existing shard), KeyMapUpdateFailed
    (the new Shard is deleted again), HashCollision, InvalidInput or StartTimeout.
    """
    node_id = _node(node_id)
    canonical, segments, encoding = _key(key)
    _json_value(initial_value)
    own = kube is None
    kube = kube or Kube(await load_config(pool_size=4))
    try:
        owner = await _find_shardset(kube, namespace, node_id)
        name = shard_name(node_id, canonical)
        body = render.shard(name=name, namespace=namespace, node_id=node_id,
                            segments=segments, encoding=encoding,
                            initial_value=initial_value, origin=ORIGIN_STARTED, owner=owner)
        try:
            created = await kube.create(body)
        except ApiError as error:
            if error.conflict:
                existing = ShardView.of(await kube.get("Shard", namespace, name))
                if existing.key != canonical:
                    raise HashCollision(
                        f"shard name {name} is taken by a different key; not merged") from None
                raise AlreadyStarted(name, shard_address(name, namespace)) from None
            if error.status in (400, 422):
                raise InvalidInput(error.message) from None
            raise
        await _await_registration(kube, namespace, created, timeout)
        return shard_address(name, namespace)
    finally:
        if own:
            await kube.close()


REGISTERED, FAILED, PENDING = "registered", "failed", "pending"


def registration_outcome(event: dict[str, Any]) -> tuple[str, str, str] | None:
    """What one watch event of a new Shard says: ``(REGISTERED | FAILED | PENDING,
    reason, message)``, or None while it says nothing yet. PENDING is a transient
    key-map failure the operator retries; it fails the start only if it outlasts the
    caller's timeout."""
    if event["type"] == "DELETED":
        return FAILED, SHARD_DELETED, "the Shard was deleted while starting"
    status = (event["object"] or {}).get("status") or {}
    if status.get("registered"):
        return REGISTERED, "", ""
    cond: dict[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == TYPE_REGISTERED), {})
    if cond.get("reason") in TERMINAL_REGISTRATION_FAILURES:
        return FAILED, cond["reason"], cond.get("message", "")
    if cond.get("reason") == KEY_MAP_PENDING:
        return PENDING, cond["reason"], cond.get("message", "")
    return None


async def _await_registration(kube: Kube, namespace: str, created: dict[str, Any],
                              timeout: float) -> None:
    """Watch the new Shard until the operator registers it or says why it cannot."""
    name, uid = created["metadata"]["name"], created["metadata"]["uid"]
    failure: tuple[str, str] | None = None
    pending: tuple[str, str] | None = None
    try:
        async with asyncio.timeout(timeout):
            while failure is None:
                async with contextlib.aclosing(_outcomes(
                        kube, namespace, name, created, timeout)) as outcomes:
                    async for outcome, reason, message in outcomes:
                        if outcome == REGISTERED:
                            return
                        if outcome == FAILED:
                            failure = (reason, message)
                        pending = (reason, message) if outcome == PENDING else None
    except TimeoutError:
        await _stop(kube, namespace, name, uid)
        if pending is not None:
            raise KeyMapUpdateFailed(f"{pending[0]}: {pending[1]} (still failing after "
                                     f"{timeout:.0f} s; the shard was stopped again)") from None
        raise StartTimeout(f"shard {name} was not registered within {timeout:.0f} s "
                           "(is the operator running?); it was stopped again") from None
    await _stop(kube, namespace, name, uid)
    raise KeyMapUpdateFailed(f"{failure[0]}: {failure[1]}")


async def _outcomes(kube: Kube, namespace: str, name: str, created: dict[str, Any],
                    timeout: float) -> AsyncGenerator[tuple[str, str, str], None]:
    """The outcomes one Shard's events say, ending at the first that decides."""
    async with contextlib.aclosing(kube.watch(
            "Shard", namespace, field_selector=f"metadata.name={name}",
            resource_version=created["metadata"]["resourceVersion"],
            timeout_seconds=int(timeout) + 1)) as stream:
        async for kind, obj in stream:
            outcome = registration_outcome({"type": kind, "object": obj})
            if outcome is not None:
                yield outcome
                if outcome[0] != PENDING:
                    return


async def _stop(kube: Kube, namespace: str, name: str, uid: str) -> None:
    try:
        await kube.delete("Shard", namespace, name, uid=uid)
    except ApiError as error:
        if not error.not_found:
            raise


async def alookup(node_id: str, key: KeySegments, *, namespace: str = "default",
                  kube: Kube | None = None) -> str:
    """The Service address the key map gives for ``key`` (one read, no watch)."""
    node_id = _node(node_id)
    canonical, _, _ = _key(key)
    own = kube is None
    kube = kube or Kube(await load_config(pool_size=2))
    try:
        try:
            data = (await kube.get("ConfigMap", namespace, key_map_name(node_id))).get("data")
        except ApiError as error:
            raise KeyMapUnavailable(
                f"key map {key_map_name(node_id)} cannot be read: {error.message}") from None
        try:
            parsed = keymap.parse(data)
        except keymap.KeyMapFormatError as error:
            raise KeyMapUnavailable(str(error)) from None
        if canonical not in parsed.shards:
            raise KeyNotFound(f"key not found in map {key_map_name(node_id)}")
        return parsed.address(canonical)
    finally:
        if own:
            await kube.close()


def start_shard(node_id: str, key: KeySegments, initial_value: Any = MISSING, *,
                namespace: str = "default", timeout: float = 60.0) -> str:
    """Blocking :func:`astart_shard` (not for use inside a running event loop)."""
    return asyncio.run(astart_shard(node_id, key, initial_value, namespace=namespace,
                                    timeout=timeout))


def lookup(node_id: str, key: KeySegments, *, namespace: str = "default") -> str:
    """Blocking :func:`alookup`."""
    return asyncio.run(alookup(node_id, key, namespace=namespace))
