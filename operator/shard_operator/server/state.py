"""The state of a shard server (its cells and a change counter), its snapshot form, and
the change records the journal holds between snapshots. Pure."""

from __future__ import annotations

import binascii
import enum
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..keycodec import InvalidKey, Key, KeyEncoding, decode_key, encode_key, key_to_base64
from ..missing import MISSING
from .cell import RESERVED, Cell, ReserveResult, Slot, SlotState, stored

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

    # -- change records (what the journal holds between snapshots) --------------------

    def apply(self, record: Any) -> None:
        """Replay one change record on top of this state.

        The record must be the next change (``version`` one above this state's) and must
        change the cell exactly as it did when it was accepted; otherwise the journal does
        not belong to this snapshot and :class:`StateFormatError` says how.
        """
        try:
            _apply(self, record)
        except StateFormatError:
            raise
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise StateFormatError(f"malformed change record {record!r}: {exc!r}") from exc

    def replay(self, records: Iterable[Any]) -> int:
        """Apply the journal's records that follow this state (see :meth:`apply`); skip
        those at or below its version, which a crash between a checkpoint and the
        journal's truncation leaves behind. Returns how many were applied."""
        applied = 0
        for record in records:
            if isinstance(record, dict) and type(record.get("v")) is int \
                    and record["v"] <= self.version:
                continue
            self.apply(record)
            applied += 1
        return applied

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


class ChangeOp(enum.StrEnum):
    """The accepted changes a journal records."""

    RESERVE = "reserve"
    WRITE = "write"
    UNRESERVE = "unreserve"
    ADVANCE = "advance"


def change_record(
    version: int, op: ChangeOp, key: Key, height: int, value: Any = MISSING
) -> dict[str, Any]:
    """The journal record of an accepted change that brought the state to ``version``."""
    record: dict[str, Any] = {"v": version, "op": op.value, "key": list(_base64_of(key)),
                              "h": height}
    if op is ChangeOp.WRITE:
        record["value"] = value
    return record


@functools.lru_cache(maxsize=64)
def _base64_of(key: Key) -> tuple[str, ...]:
    """A shard holds one key or a few: encode each once."""
    return tuple(key_to_base64(key))


def _apply(state: ShardState, record: Any) -> None:
    if not isinstance(record, dict):
        raise StateFormatError(f"change record is not a JSON object: {record!r}")
    version = _int(record["v"], "change version")
    if version != state.version + 1:
        raise StateFormatError(
            f"change record for version {version} does not follow state version {state.version}"
        )
    segments = record["key"]
    cell = state.cells.get(_key_from_base64(segments, "change record key"))
    if cell is None:
        raise StateFormatError(f"change record for a key this state does not hold: {segments!r}")
    op, height = ChangeOp(record["op"]), _int(record["h"], "change height")
    if op is ChangeOp.RESERVE:
        applied = cell.reserve(height) is ReserveResult.OK
    elif op is ChangeOp.WRITE:
        applied = cell.write(height, record["value"])
    elif op is ChangeOp.UNRESERVE:
        applied = cell.unreserve(height)
    else:
        applied = cell.advance_watermark(height)
    if not applied:
        raise StateFormatError(
            f"change record {version} ({op.value} at height {height}) does not apply to the "
            f"state it follows"
        )
    state.version = version


def _slot_json(height: int, slot: Slot) -> dict[str, Any]:
    if slot.reserved:
        return {"height": height, "state": SlotState.RESERVED.value}
    return {"height": height, "state": SlotState.VALUE.value, "value": slot.value}


def _key_from_base64(segments: Any, what: str) -> Key:
    """The key stored as base64 segments (the form :func:`key_to_base64` writes)."""
    if not isinstance(segments, list) or not all(isinstance(s, str) for s in segments):
        raise StateFormatError(f"{what} must be a list of base64 strings")
    try:
        return decode_key(segments, KeyEncoding.BASE64)
    except InvalidKey as exc:
        raise StateFormatError(f"{what}: {exc}") from None


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
        key = _key_from_base64(segments, "cell key")
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


__all__ = ["MISSING", "ChangeOp", "ShardState", "StateFormatError", "change_record"]
