"""Unit tests of the pure modules: cell semantics, keys, strict JSON, state snapshot, store."""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shard_operator.keycodec import InvalidKey, KeyEncoding, decode_key, encode_key
from shard_operator.server.cell import (
    ABSENT,
    MISSING,
    RESERVED,
    WAIT,
    Cell,
    ReadOutcome,
    ReadStatus,
    ReserveResult,
    stored,
)
from shard_operator.server.state import ShardState, StateFormatError
from shard_operator.server.store import (
    CorruptStateError,
    StateLockedError,
    StateStore,
    decode_state_file,
    encode_state_file,
)
from shard_operator.server.values import MAX_DEPTH, JSONValueError, loads_strict


def ok(value):
    return ReadOutcome(ReadStatus.OK, value)


# -- cell ------------------------------------------------------------------------------


def test_initial_value_sits_at_height_zero():
    cell = Cell(5)
    assert cell.slot(0) == stored(5)
    assert cell.watermark == 0
    assert cell.read(1) == ok(5)
    assert cell.read(0) == ABSENT  # nothing strictly below 0


def test_none_is_a_value_and_missing_is_not():
    assert Cell(None).read(1) == ok(None)
    assert Cell(MISSING).read(1) == ABSENT
    assert Cell().read(1) == ABSENT


def test_read_waits_above_watermark_plus_one():
    cell = Cell(5)
    assert cell.read(2) == WAIT
    cell.advance_watermark(1)
    assert cell.read(2) == ok(5)
    assert cell.read(3) == WAIT


def test_reserve_rules():
    cell = Cell(5)
    assert cell.reserve(0) is ReserveResult.UNDER_WATERMARK  # 0 <= watermark 0
    assert cell.reserve(1) is ReserveResult.OK
    assert cell.reserve(1) is ReserveResult.OCCUPIED
    cell.advance_watermark(3)
    assert cell.reserve(3) is ReserveResult.UNDER_WATERMARK
    assert cell.reserve(2) is ReserveResult.UNDER_WATERMARK
    assert cell.reserve(4) is ReserveResult.OK
    assert cell.write(4, "v")
    assert cell.reserve(4) is ReserveResult.OCCUPIED


def test_reserved_slot_blocks_reads_above_it():
    cell = Cell(5)
    cell.reserve(2)
    cell.advance_watermark(10)
    assert cell.read(2) == ok(5)
    assert cell.read(3) == WAIT
    assert cell.read(11) == WAIT
    assert cell.write(2, "two")
    assert cell.read(3) == ok("two")
    assert cell.read(11) == ok("two")


def test_write_applies_only_to_reserved_slots_even_below_watermark():
    cell = Cell()
    assert not cell.write(1, "x")  # empty
    cell.reserve(1)
    cell.advance_watermark(5)
    assert cell.write(1, "x")  # below the watermark, still reserved: applies
    assert not cell.write(1, "y")  # holds a value
    assert not cell.write(0, "z")
    assert cell.slot(1) == stored("x")


def test_unreserve():
    cell = Cell(5)
    cell.reserve(3)
    assert cell.unreserve(3)
    assert cell.slot(3) is None
    assert not cell.unreserve(3)
    assert not cell.unreserve(0)  # values are not unreserved
    assert cell.slot(0) == stored(5)
    assert cell.reserve(3) is ReserveResult.OK  # empty again


def test_advance_is_monotonic():
    cell = Cell()
    assert cell.advance_watermark(5)
    assert not cell.advance_watermark(3)
    assert not cell.advance_watermark(5)
    assert cell.watermark == 5


def test_slots_are_ordered_and_counted():
    cell = Cell(0)
    for h in (9, 3, 6):
        cell.reserve(h)
    cell.write(6, "six")
    assert list(cell.slots()) == [(0, stored(0)), (3, RESERVED), (6, stored("six")), (9, RESERVED)]
    assert cell.value_count() == 2


@pytest.mark.parametrize("bad", [-1, True, 1.0, "1", None])
def test_invalid_heights_are_programming_errors(bad):
    with pytest.raises(ValueError):
        Cell().read(bad)
    with pytest.raises(ValueError):
        Cell().reserve(bad)


def test_restore_round_trip_and_rejects_duplicates():
    cell = Cell.restore(4, [(0, stored(1)), (5, RESERVED)])
    assert cell.watermark == 4 and cell.read(5) == ok(1) and cell.read(6) == WAIT
    with pytest.raises(ValueError):
        Cell.restore(0, [(1, RESERVED), (1, RESERVED)])


def test_huge_heights():
    cell = Cell()
    big = 2**63 - 1
    assert cell.reserve(big) is ReserveResult.OK
    assert cell.advance_watermark(big)
    assert cell.read(big) == ABSENT
    assert cell.read(big + 1) == WAIT  # blocked by the reservation at big


# -- keys ------------------------------------------------------------------------------


def test_key_identity_is_by_byte_segments():
    assert decode_key(["a", "b"], KeyEncoding.UTF8) != decode_key(["ab"], KeyEncoding.UTF8)
    assert decode_key(["é"], KeyEncoding.UTF8) == (b"\xc3\xa9",)
    b64 = [base64.b64encode(b"\x00\xff").decode()]
    assert decode_key(b64, KeyEncoding.BASE64) == (b"\x00\xff",)
    assert encode_key((b"\x00\xff",), KeyEncoding.BASE64) == b64


@pytest.mark.parametrize(
    "segment", ["not base64!", "QQ", "QR==", "QQ==\n", "Q===", "éé=="], ids=repr
)
def test_invalid_base64_segments(segment):
    with pytest.raises(InvalidKey, match="segment 0"):
        decode_key([segment], KeyEncoding.BASE64)


def test_lone_surrogate_is_not_a_utf8_segment():
    with pytest.raises(InvalidKey):
        decode_key(["\ud800"], KeyEncoding.UTF8)


@given(st.lists(st.binary(max_size=8), max_size=4))
def test_base64_keys_round_trip(key):
    key = tuple(key)
    assert decode_key(encode_key(key, KeyEncoding.BASE64), KeyEncoding.BASE64) == key


# -- strict JSON -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("NaN", "NaN"),
        ("[Infinity]", "Infinity"),
        ("1e999", "out of range"),
        ("1" * 4001, "longer than"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nested deeper"),
        ("[" * 100_000, "nested deeper"),
        (b"\xff", "UTF-8"),
        ('{"a":', "Expecting"),
    ],
    ids=["nan", "infinity", "overflow", "long-int", "deep", "very-deep", "utf8", "cut"],
)
def test_strict_json_rejects(text, message):
    with pytest.raises(JSONValueError, match=message):
        loads_strict(text)


def test_strict_json_accepts_the_limits():
    assert loads_strict("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    assert loads_strict("1" * 4000) == int("1" * 4000)
    assert loads_strict('"\\ud800"') == "\ud800"


# -- state snapshot and state file -----------------------------------------------------


def _state() -> ShardState:
    state = ShardState.initial("node", [((b"a",), 5), ((b"\x00",), MISSING)])
    cell = state.cells[(b"a",)]
    cell.reserve(3)
    cell.reserve(4)
    cell.write(4, {"nested": [1, None, "x"]})
    cell.advance_watermark(7)
    state.version = 4
    return state


def test_state_payload_round_trip():
    state = _state()
    again = ShardState.from_payload(decode_state_file(encode_state_file(state.to_payload())))
    assert again == state


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.update(formatVersion=2),
        lambda p: p.update(format="other"),
        lambda p: p["cells"][0].update(watermark=-1),
        lambda p: p["cells"][0]["slots"].append({"height": 3, "state": "reserved"}),
        lambda p: p["cells"][0]["slots"].append({"height": 30, "state": "weird"}),
        lambda p: p["cells"].append(dict(p["cells"][0])),
        lambda p: p.pop("nodeId"),
    ],
)
def test_invalid_payloads_are_rejected(mutate):
    payload = _state().to_payload()
    mutate(payload)
    with pytest.raises(StateFormatError):
        ShardState.from_payload(payload)


def test_state_file_detects_every_truncation():
    data = encode_state_file(_state().to_payload())
    for cut in range(len(data)):
        with pytest.raises(CorruptStateError):
            decode_state_file(data[:cut])
    assert decode_state_file(data) == _state().to_payload()
    with pytest.raises(CorruptStateError, match="announces"):
        decode_state_file(data + b" ")


@settings(max_examples=200)
@given(st.data())
def test_state_file_detects_any_byte_change(data):
    raw = bytearray(encode_state_file(_state().to_payload()))
    index = data.draw(st.integers(0, len(raw) - 1))
    flip = data.draw(st.integers(1, 255))
    raw[index] ^= flip
    with pytest.raises(CorruptStateError):
        decode_state_file(bytes(raw))


def test_store_save_load_and_lock(tmp_path):
    store = StateStore(tmp_path / "d")
    store.open()
    assert store.load() is None
    payload = _state().to_payload()
    store.save(payload)
    assert store.load() == payload
    assert not any(p.name.endswith(".tmp") for p in store.data_dir.iterdir())
    assert oct(os.stat(store.path).st_mode & 0o777) == "0o600"
    second = StateStore(tmp_path / "d")
    with pytest.raises(StateLockedError):
        second.open()
    store.close()
    second.open()  # the lock is free again
    second.close()
