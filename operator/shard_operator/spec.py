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

    @classmethod
    def of(cls, spec: Mapping[str, Any] | None) -> ShardSetSpec:
        spec = spec or {}
        return cls(node_id=spec.get("nodeId", ""),
                   schema=tuple(SchemaEntry.of(entry) for entry in spec.get("schema") or ()),
                   template=spec.get("template"),
                   removed_key_policy=spec.get("removedKeyPolicy", REMOVED_KEY_RETAIN))

    @property
    def deletes_removed_keys(self) -> bool:
        return self.removed_key_policy == REMOVED_KEY_DELETE
