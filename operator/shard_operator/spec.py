"""A ShardSet's spec, typed: parsed once, where the cache takes the object in.

The API server has validated the spec against the CRD's schema already; parsing keeps
what the operator reads, with the CRD's defaults, and never raises: what only shows
when the entries are taken together (the same key in two encodings, a value over the
limit) is found by :func:`shard_operator.render.schema_shards`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .keycodec import KeyEncoding
from .missing import MISSING

REMOVED_KEY_RETAIN = "Retain"
REMOVED_KEY_DELETE = "Delete"
CLAIM_RETAIN = "Retain"


@dataclass(frozen=True, slots=True)
class SchemaEntry:
    """One ``spec.schema[i]``: a key as written (segments and their encoding) and its
    initial value (``MISSING`` when the entry has none; ``None`` is the value null)."""

    segments: tuple[str, ...]
    encoding: str = KeyEncoding.UTF8.value
    initial_value: Any = MISSING

    @classmethod
    def of(cls, entry: Mapping[str, Any]) -> SchemaEntry:
        return cls(segments=tuple(entry.get("key") or ()),
                   encoding=entry.get("keyEncoding", KeyEncoding.UTF8.value),
                   initial_value=entry["initialValue"] if "initialValue" in entry else MISSING)


@dataclass(frozen=True, slots=True)
class ShardSetSpec:
    node_id: str
    schema: tuple[SchemaEntry, ...] = ()
    template: dict[str, Any] | None = None  # the Pod template (None: the default)
    removed_key_policy: str = REMOVED_KEY_RETAIN
    # A claim per shard from this PVC template (None: an emptyDir per pod).
    volume_claim_template: dict[str, Any] | None = None
    claim_retention: str = CLAIM_RETAIN  # persistentVolumeClaimRetentionPolicy.whenDeleted
    update_strategy: dict[str, Any] | None = None  # as written; rollout.UpdateStrategy reads it
    # Peers let in besides the labelled clients (podSelector and/or namespaceSelector).
    client_selector: tuple[dict[str, Any], ...] = ()

    @classmethod
    def of(cls, spec: Mapping[str, Any] | None) -> ShardSetSpec:
        spec = spec or {}
        retention = spec.get("persistentVolumeClaimRetentionPolicy") or {}
        return cls(node_id=spec.get("nodeId", ""),
                   schema=tuple(SchemaEntry.of(entry) for entry in spec.get("schema") or ()),
                   template=spec.get("template"),
                   removed_key_policy=spec.get("removedKeyPolicy", REMOVED_KEY_RETAIN),
                   volume_claim_template=spec.get("volumeClaimTemplate") or None,
                   claim_retention=retention.get("whenDeleted", CLAIM_RETAIN),
                   update_strategy=spec.get("updateStrategy"),
                   client_selector=tuple(spec.get("clientSelector") or ()))

    def claims(self) -> dict[str, Any]:
        """The part of the spec :func:`shard_operator.volumes.desired_claim` reads."""
        return {"volumeClaimTemplate": self.volume_claim_template,
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": self.claim_retention}}

    @property
    def deletes_removed_keys(self) -> bool:
        return self.removed_key_policy == REMOVED_KEY_DELETE
