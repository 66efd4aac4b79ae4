"""The state of a shard server (its cells and a change counter) and its snapshot form. Pure."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .cell import MISSING, RESERVED, Cell, Slot, SlotState, stored
from .keys import Key, KeyEncoding, encode_key, key_to_base64

SNAPSHOT_FORMAT = "shard-operator/shard-state"
SNAPSHOT_FORMAT_VERSION = 1


class StateFormatError(ValueError):
    """A snapshot payload that does not describe a valid shard state."""


@dataclass
class ShardState:
    """All cells held by one shard server, plus ``version``: the count of accepted changes."""

    node_id: str
    cells: dict[Key, Cell] = field(default_factory=dict)
    version: int = 0

    @classmethod
    def initial(cls, node_id: str, keys: Iterable[tuple[Key, Any]]) -> ShardState:
        """Fresh cells for ``(key, initial_value)`` pairs (``MISSING`` = no initial value)."""
        return cls(node_id, {key: Cell(initial) for key, initial in keys})

    def value_count(self) -> int:
        return sum(cell.value_count() for cell in self.cells.values())

    # -- snapshot payload (what the store persists) ------------------------------------

    def to_payload(self) -> dict[str, Any]:
        """A JSON-ready snapshot. Keys are stored as base64 of their bytes."""
        return {
            "format": SNAPSHOT_FORMAT,
            "formatVersion": SNAPSHOT_FORMAT_VERSION,
            "nodeId": self.node_id,
            "version": self.version,
            "cells": [
                {
                    "key": key_to_base64(key),
                    "watermark": cell.watermark,
                    "slots": [_slot_json(h, s) for h, s in cell.slots()],
                }
                for key, cell in self.cells.items()
            ],
        }

    @classmethod
    def from_payload(cls, payload: Any) -> ShardState:
        """Rebuild a state from :meth:`to_payload` output; :class:`StateFormatError` if bad."""
        try:
            return _from_payload(payload)
        except StateFormatError:
            raise
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise StateFormatError(f"malformed state payload: {exc!r}") from exc

    # -- debugging view ----------------------------------------------------------------

    def describe(self, encoding: KeyEncoding, waiting: dict[Key, int]) -> dict[str, Any]:
        """The JSON body of ``GET /v1/state``."""
        return {
            "nodeId": self.node_id,
            "keyEncoding": encoding.value,
            "version": self.version,
            "cells": [
                {
                    "key": encode_key(key, encoding),
                    "watermark": cell.watermark,
                    "waitingReaders": waiting.get(key, 0),
                    "slots": [_slot_json(h, s) for h, s in cell.slots()],
                }
                for key, cell in self.cells.items()
            ],
        }


def _slot_json(height: int, slot: Slot) -> dict[str, Any]:
    if slot.reserved:
        return {"height": height, "state": SlotState.RESERVED.value}
    return {"height": height, "state": SlotState.VALUE.value, "value": slot.value}


def _int(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise StateFormatError(f"{what} must be an integer >= 0, got {value!r}")
    return value


def _from_payload(payload: Any) -> ShardState:
    if not isinstance(payload, dict):
        raise StateFormatError("state payload is not a JSON object")
    if payload.get("format") != SNAPSHOT_FORMAT:
        raise StateFormatError(f"unknown state format {payload.get('format')!r}")
    if payload.get("formatVersion") != SNAPSHOT_FORMAT_VERSION:
        raise StateFormatError(
            f"unsupported state format version {payload.get('formatVersion')!r} "
            f"(this server reads version {SNAPSHOT_FORMAT_VERSION})"
        )
    node_id = payload["nodeId"]
    if not isinstance(node_id, str):
        raise StateFormatError("nodeId must be a string")
    cells: dict[Key, Cell] = {}
    for entry in payload["cells"]:
        segments = entry["key"]
        if not isinstance(segments, list) or not all(isinstance(s, str) for s in segments):
            raise StateFormatError("cell key must be a list of base64 strings")
        key = tuple(base64.b64decode(s, validate=True) for s in segments)
        if key in cells:
            raise StateFormatError(f"duplicate cell for key {segments!r}")
        slots: list[tuple[int, Slot]] = []
        for raw in entry["slots"]:
            height = _int(raw["height"], "slot height")
            if raw["state"] == SlotState.RESERVED.value:
                slots.append((height, RESERVED))
            elif raw["state"] == SlotState.VALUE.value:
                slots.append((height, stored(raw["value"])))
            else:
                raise StateFormatError(f"unknown slot state {raw['state']!r}")
        watermark = _int(entry["watermark"], "watermark")
        cells[key] = Cell.restore(watermark, slots)
    return ShardState(node_id, cells, _int(payload["version"], "version"))


__all__ = ["MISSING", "ShardState", "StateFormatError"]
