"""Unit tests of the journal: record format, torn tails, replay, and group commit with
checkpoints (in a temporary directory, no server process)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shard_operator.server import store as store_module
from shard_operator.server.cell import ReserveResult
from shard_operator.server.journal import JournalCorrupt, decode_journal, encode_record
from shard_operator.server.shard import Shard
from shard_operator.server.state import ChangeOp, ShardState, StateFormatError, change_record
from shard_operator.server.store import GroupCommitter, StateStore

KEY = (b"a",)


def _records(n: int) -> list[dict]:
    return [change_record(v, ChangeOp.ADVANCE, KEY, v) for v in range(1, n + 1)]


def _journal(n: int) -> bytes:
    return b"".join(encode_record(r) for r in _records(n))


def test_records_round_trip_and_key_is_base64():
    records = [
        change_record(1, ChangeOp.RESERVE, KEY, 3),
        change_record(2, ChangeOp.WRITE, KEY, 3, {"x": [None, "é\n"]}),
        change_record(3, ChangeOp.UNRESERVE, KEY, 4),
    ]
    data = b"".join(encode_record(r) for r in records)
    assert data.count(b"\n") == 3  # a newline inside a value is escaped
    contents = decode_journal(data)
    assert contents.records == records
    assert (contents.valid_bytes, contents.torn_bytes) == (len(data), 0)
    assert records[0] == {"v": 1, "op": "reserve", "key": ["YQ=="], "h": 3}


def test_nan_cannot_be_journaled():
    with pytest.raises(ValueError):
        encode_record(change_record(1, ChangeOp.WRITE, KEY, 1, float("nan")))


@settings(max_examples=100)
@given(st.integers(min_value=0, max_value=len(_journal(3)) - 1))
def test_any_truncation_keeps_the_complete_records_and_reports_the_tail(cut):
    data = _journal(3)
    contents = decode_journal(data[:cut])
    complete = data[:cut].count(b"\n")
    assert contents.records == _records(3)[:complete]
    assert contents.valid_bytes + contents.torn_bytes == cut


@settings(max_examples=200)
@given(st.data())
def test_a_changed_byte_is_never_replayed_silently(data):
    raw = bytearray(_journal(3))
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] ^= data.draw(st.integers(1, 255))
    try:
        contents = decode_journal(bytes(raw))
    except JournalCorrupt:
        return
    # only possible for a change in the last record (or its newline): a torn tail
    assert contents.records == _records(3)[: len(contents.records)]
    assert contents.torn_bytes > 0 or len(contents.records) < 3


def test_invalid_record_before_a_valid_one_is_corruption():
    lines = _journal(3).splitlines(keepends=True)
    with pytest.raises(JournalCorrupt, match="invalid record at byte"):
        decode_journal(lines[0] + b"garbage\n" + lines[2])


def test_replay_applies_changes_in_order_and_refuses_what_does_not_follow():
    state = ShardState.initial("n", [(KEY, 5)])
    state.apply(change_record(1, ChangeOp.RESERVE, KEY, 3))
    state.apply(change_record(2, ChangeOp.WRITE, KEY, 3, "three"))
    state.apply(change_record(3, ChangeOp.ADVANCE, KEY, 4))
    cell = state.cells[KEY]
    assert (state.version, cell.watermark, cell.read(4).value) == (3, 4, "three")
    with pytest.raises(StateFormatError, match="does not follow state version 3"):
        state.apply(change_record(5, ChangeOp.ADVANCE, KEY, 9))
    with pytest.raises(StateFormatError, match="does not apply"):
        state.apply(change_record(4, ChangeOp.WRITE, KEY, 7, "no reservation"))
    with pytest.raises(StateFormatError, match="does not hold"):
        state.apply(change_record(4, ChangeOp.ADVANCE, (b"b",), 9))
    with pytest.raises(StateFormatError, match="malformed"):
        state.apply({"v": 4, "op": "explode", "key": ["YQ=="], "h": 1})


def test_store_appends_checkpoints_and_notices_a_removed_journal(tmp_path):
    store = StateStore(tmp_path / "d")
    store.open()
    store.checkpoint(ShardState.initial("n", [(KEY, 1)]).to_payload())
    store.append(_journal(2))
    assert store.load_journal().records == _records(2)
    assert store.journal_bytes == len(_journal(2))
    store.checkpoint({"any": "payload"})
    assert store.journal_path.read_bytes() == b"" and store.journal_bytes == 0
    store.journal_path.unlink()
    with pytest.raises(OSError, match="was removed"):
        store.append(_journal(1))
    store.close()


async def test_group_commit_batches_concurrent_changes_and_checkpoints_when_due(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(store_module, "CHECKPOINT_MIN_JOURNAL_BYTES", 2_000)
    disk = StateStore(tmp_path / "d")
    disk.open()
    state = ShardState.initial("n", [(KEY, 0)])
    disk.checkpoint(state.to_payload())
    commits: list[int] = []
    shard = Shard(state, store=disk, on_commit=lambda covered, *_: commits.append(covered))
    committer = shard._committer
    assert isinstance(committer, GroupCommitter)

    results = await asyncio.gather(*(shard.reserve(KEY, h) for h in range(1, 41)))
    assert set(results) == {ReserveResult.OK}
    assert sum(commits) == 40 and len(commits) < 40  # batched
    for height in range(1, 41):  # sequential: one commit each, until a checkpoint is due
        await shard.write(KEY, height, "x" * 50)
    assert committer.checkpoints >= 1
    assert committer.durable_version == state.version == 80
    await shard.close()

    replayed = ShardState.from_payload(disk.load())
    for record in disk.load_journal().records:
        if record["v"] > replayed.version:
            replayed.apply(record)
    assert replayed.cells == state.cells and replayed.version == 80
    disk.close()


def test_preallocated_journal_is_overwritten_in_place_and_its_zeros_ignored(tmp_path):
    store = StateStore(tmp_path / "d")
    store.open()
    store.checkpoint(ShardState.initial("n", [(KEY, 1)]).to_payload())
    records = [encode_record(r) for r in _records(3)]
    for line in records:
        store.append(line)
    data = store.journal_path.read_bytes()
    assert len(data) == store_module.JOURNAL_PREALLOCATE_BYTES  # one allocation
    assert data.rstrip(b"\0") == b"".join(records) and store.journal_bytes == len(
        b"".join(records)
    )
    assert store.load_journal().records == _records(3)
    big = b"x" * store_module.JOURNAL_PREALLOCATE_BYTES  # outgrows it: grows again
    store.append(big)
    assert store.journal_path.stat().st_size >= store.journal_bytes
    store.checkpoint({"any": "payload"})  # empties it; the next append allocates anew
    assert store.journal_path.read_bytes() == b""
    store.append(records[0])
    assert store.journal_path.read_bytes().rstrip(b"\0") == records[0]
    store.close()


def test_zeros_after_the_records_are_not_a_torn_tail_but_before_one_are_corruption():
    data = _journal(2)
    contents = decode_journal(data + bytes(1000))
    assert contents.records == _records(2) and contents.torn_bytes == 0
    torn = decode_journal(data + encode_record(_records(3)[2])[:7] + bytes(1000))
    assert torn.records == _records(2) and torn.torn_bytes == 7
    with pytest.raises(JournalCorrupt):
        decode_journal(data + bytes(10) + b"\n" + _journal(3)[len(data):])
