"""Durability: SIGKILL at random moments loses no answered change; bad state files and
bad configuration stop the server with a clear message instead of serving wrong state."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field

import pytest

from shard_operator.client import (
    ReadResult,
    ReservingUnderWatermark,
    ShardClient,
    ShardError,
    ShardUnavailable,
)
from shard_operator.server.journal import JOURNAL_FILE_NAME
from shard_operator.server.store import STATE_FILE_NAME

pytestmark = pytest.mark.timeout(120)

KEY = ["k"]
SERVICE = "shard-k"


@dataclass
class Ledger:
    """What the clients sent, and what the server answered (and so promised)."""

    next_height: int = 1
    reserve_answered: set[int] = field(default_factory=set)
    write_sent: dict[int, str] = field(default_factory=dict)
    write_answered: dict[int, str] = field(default_factory=dict)
    unreserve_sent: set[int] = field(default_factory=set)
    unreserve_answered: set[int] = field(default_factory=set)
    advance_answered: int = 0
    answered_total: int = 0

    def allocate(self) -> int:
        height = self.next_height
        self.next_height += 1
        return height

    def check(self, cell: dict) -> None:
        """Every answered change is in the restored ``cell``; nothing unexplained is."""
        slots = {s["height"]: s for s in cell["slots"]}
        assert cell["watermark"] >= self.advance_answered
        for height, value in self.write_answered.items():
            assert slots.get(height) == {"height": height, "state": "value", "value": value}
        for height in self.unreserve_answered:
            assert height not in slots
        for height in self.reserve_answered:
            slot = slots.get(height)
            if height in self.write_answered or height in self.unreserve_answered:
                continue
            possible = [{"height": height, "state": "reserved"}]
            if height in self.write_sent:  # sent, answer lost in the kill
                possible.append({"height": height, "state": "value", "value": f"v{height}"})
            if height in self.unreserve_sent:
                possible.append(None)
            assert slot in possible, (height, slot)
        for height in slots:
            # a slot the clients never asked for (height 0 holds the initial value)
            assert height == 0 or height < self.next_height, height


async def _writer(client: ShardClient, ledger: Ledger, rng: random.Random) -> None:
    """Reserve, then write or unreserve, sometimes advance; stop when the server dies."""
    try:
        while True:
            height = ledger.allocate()
            try:
                await client.reserve(SERVICE, KEY, height)
            except ReservingUnderWatermark:
                continue  # another writer advanced past it: an answered refusal
            ledger.reserve_answered.add(height)
            ledger.answered_total += 1
            if rng.random() < 0.2:
                ledger.unreserve_sent.add(height)
                assert await client.unreserve(SERVICE, KEY, height) is True
                ledger.unreserve_answered.add(height)
                continue
            value = f"v{height}"
            ledger.write_sent[height] = value
            assert await client.write(SERVICE, KEY, height, value) is True
            ledger.write_answered[height] = value
            ledger.answered_total += 1
            if rng.random() < 0.2:
                watermark = await client.advance_watermark(SERVICE, KEY, height)
                ledger.advance_answered = max(ledger.advance_answered, watermark)
    except ShardUnavailable:
        return  # killed: whatever was not answered is allowed to be lost


async def test_sigkill_at_random_moments_loses_no_answered_change(servers):
    rng = random.Random(5_2024)
    server = servers.make(KEY, initial="genesis")
    ledger = Ledger()
    for _ in range(5):
        server.start()
        ledger.check(server.cell())
        ledger.next_height = max(ledger.next_height, server.cell()["watermark"] + 1)
        async with ShardClient(lambda _: server.address, request_timeout=20) as client:
            writers = [
                asyncio.create_task(_writer(client, ledger, random.Random(rng.random())))
                for _ in range(6)
            ]
            await asyncio.sleep(rng.uniform(0.2, 1.5))  # picks the kill moment; asserts nothing
            server.kill()
            results = await asyncio.gather(*writers, return_exceptions=True)
            assert not [r for r in results if isinstance(r, BaseException)], results
    server.start()
    cell = server.cell()
    ledger.check(cell)
    assert cell["slots"][0] == {"height": 0, "state": "value", "value": "genesis"}
    assert ledger.answered_total > 50  # the writers really were busy when killed


async def test_restart_restores_everything_and_ignores_a_new_initial_value(servers):
    server = servers.make(["a"], initial=5)
    server.start()
    async with ShardClient(lambda _: server.address) as client:
        await client.reserve("a", ["a"], 3)
        await client.reserve("a", ["a"], 4)
        await client.advance_watermark("a", ["a"], 6)
        assert await client.write("a", ["a"], 3, {"x": None}) is True
    before = server.state()

    server.kill()
    server.initial = 99  # like start_shard(["a"], 99): already started, value stays 5
    server.start()
    assert server.state() == before
    async with ShardClient(lambda _: server.address) as client:
        assert await client.read("a", ["a"], 1) == ReadResult(True, 5)
        assert await client.read("a", ["a"], 4) == ReadResult(True, {"x": None})
        # the reservation at 4 survived: it still blocks, and a write to it still applies
        with pytest.raises(ShardError):
            await client.read("a", ["a"], 5, timeout=0)
        assert await client.write("a", ["a"], 4, "four") is True


def _stopped_server_with_state(servers):
    """A server stopped cleanly (SIGTERM) after two changes: they are in its snapshot."""
    server = servers.start(["a"], initial=5)
    server.post("/v1/reserve", {"key": ["a"], "height": 2})
    server.post("/v1/write", {"key": ["a"], "height": 2, "value": "two"})
    assert server.terminate() == 0
    assert (server.data_dir / JOURNAL_FILE_NAME).read_bytes() == b""
    return server, server.data_dir / STATE_FILE_NAME


def _killed_server_with_journal(servers):
    """A server SIGKILLed after three changes: they are only in its journal."""
    server = servers.start(["a"], initial=5)
    for path, body in (
        ("/v1/reserve", {"key": ["a"], "height": 2}),
        ("/v1/write", {"key": ["a"], "height": 2, "value": "two"}),
        ("/v1/advance-watermark", {"key": ["a"], "height": 2}),
    ):
        assert server.post(path, body)[0] == 200
    server.kill()
    return server, server.data_dir / JOURNAL_FILE_NAME


def _written(journal):
    """The journal's records: the file is preallocated, zeros follow them."""
    return journal.read_bytes().rstrip(b"\0")


def test_journal_holds_the_changes_since_the_snapshot_and_replays_them(servers):
    server, journal = _killed_server_with_journal(servers)
    assert journal.read_bytes().endswith(b"\0")  # preallocated
    lines = _written(journal).splitlines()
    records = [json.loads(line.split(b" ", 1)[1]) for line in lines]
    assert [(r["v"], r["op"], r["h"]) for r in records] == [
        (1, "reserve", 2), (2, "write", 2), (3, "advance", 2)
    ]
    assert records[1]["value"] == "two"
    server.start()
    assert "3 journal record(s) replayed" in server.log_text()
    cell = server.cell()
    assert cell["watermark"] == 2
    assert cell["slots"][1] == {"height": 2, "state": "value", "value": "two"}
    assert journal.read_bytes() == b""  # replayed into a new snapshot


@pytest.mark.parametrize("zeros", [0, 4096], ids=["at-the-end", "before-preallocated-zeros"])
@pytest.mark.parametrize("cut", [1, 9, -1], ids=["one-byte", "in-checksum", "no-newline"])
def test_torn_journal_tail_is_dropped_with_a_warning(servers, cut, zeros):
    server, journal = _killed_server_with_journal(servers)
    data = _written(journal)
    last = data.rstrip(b"\n").rfind(b"\n") + 1  # start of the last record (the advance)
    journal.write_bytes((data[: last + cut] if cut > 0 else data[:cut]) + bytes(zeros))
    server.start()
    assert "interrupted" in server.log_text()
    cell = server.cell()
    assert cell["watermark"] == 0  # the torn advance was never acknowledged
    assert cell["slots"][1] == {"height": 2, "state": "value", "value": "two"}


def test_corrupted_journal_record_refuses_to_start(servers):
    server, journal = _killed_server_with_journal(servers)
    data = bytearray(journal.read_bytes())
    data[data.index(b'"two"') + 1] ^= 0x01  # inside the second of three records
    journal.write_bytes(bytes(data))
    _assert_refuses(server, "refusing to start", "corrupted: invalid record", str(journal))
    assert journal.read_bytes() == bytes(data)


def test_journal_that_does_not_follow_the_snapshot_refuses_to_start(servers):
    server, journal = _killed_server_with_journal(servers)
    kept = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(kept[1:]))  # the reserve is gone: the write cannot apply
    _assert_refuses(server, "refusing to start", "does not follow state file")


def test_journal_without_a_state_file_refuses_to_start(servers):
    server, _ = _killed_server_with_journal(servers)
    (server.data_dir / STATE_FILE_NAME).unlink()
    _assert_refuses(server, "refusing to start", "there is no state file")


def _assert_refuses(server, *needles: str, code: int = 3) -> None:
    assert server.run_to_exit() == code, server.log_text()
    log = server.log_text()
    for needle in needles:
        assert needle in log, log


def test_corrupted_state_file_refuses_to_start(servers):
    server, path = _stopped_server_with_state(servers)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # one bit inside the payload
    path.write_bytes(bytes(data))
    _assert_refuses(server, "refusing to start", "corrupted: checksum mismatch", str(path))
    assert path.read_bytes() == bytes(data)  # the evidence is left as it was


@pytest.mark.parametrize("keep", [0, 10, 0.5, -1], ids=["empty", "in-header", "half", "last-byte"])
def test_truncated_state_file_refuses_to_start(servers, keep):
    server, path = _stopped_server_with_state(servers)
    data = path.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    path.write_bytes(data[:cut])
    _assert_refuses(server, "refusing to start", "truncated")


def test_state_of_another_key_refuses_to_start(servers):
    server, _ = _stopped_server_with_state(servers)
    server.key = ["b"]
    _assert_refuses(server, "refusing to start", "holds key(s)", "SHARD_KEY")


def test_valid_checksum_but_invalid_content_refuses_to_start(servers):
    from shard_operator.server.store import encode_state_file

    server, path = _stopped_server_with_state(servers)
    path.write_bytes(encode_state_file({"format": "shard-operator/shard-state", "x": 1}))
    _assert_refuses(server, "refusing to start", "not a valid shard state")


def test_second_server_on_the_same_data_dir_refuses(servers):
    first = servers.start(["a"])
    second = servers.make(["a"], data_dir=first.data_dir)
    _assert_refuses(second, "in use by another shard-server")
    assert first.state()["cells"][0]["key"] == ["a"]  # the first one is unaffected


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"SHARD_NODE_ID": ""}, "SHARD_NODE_ID is not set"),
        ({"SHARD_KEY": "not json"}, "SHARD_KEY is not valid JSON"),
        ({"SHARD_KEY": '"a"'}, "must be a JSON list of strings"),
        ({"SHARD_KEY": "[]"}, "at least one segment"),
        ({"SHARD_KEY": '["a", ""]'}, "segment 1 is empty"),
        ({"SHARD_KEY_ENCODING": "hex"}, "must be 'utf8' or 'base64'"),
        ({"SHARD_KEY_ENCODING": "base64"}, "segment 0 is not valid base64"),
        ({"SHARD_INITIAL_VALUE": "{"}, "SHARD_INITIAL_VALUE is not valid JSON"),
        ({"SHARD_INITIAL_VALUE": "NaN"}, "SHARD_INITIAL_VALUE is not valid JSON"),
    ],
)
def test_bad_configuration_refuses_to_start(servers, env, needle):
    server = servers.make(["a"], env=env)
    _assert_refuses(server, "configuration error", needle, code=2)


async def test_sigterm_answers_waiting_readers_and_exits_cleanly(servers):
    server = servers.start(["a"])
    async with ShardClient(lambda _: server.address) as client:
        read = asyncio.create_task(client.read("a", ["a"], 10))
        await server.await_waiting_readers(1)
        assert await asyncio.to_thread(server.terminate) == 0
        with pytest.raises(ShardUnavailable) as info:
            await read
        assert info.value.code in (None, "shutting_down")


def test_state_file_is_readable(servers):
    _, path = _stopped_server_with_state(servers)
    header, _, body = path.read_bytes().partition(b"\n")
    assert header.startswith(b"SHARD-STATE v1 sha256=")
    payload = json.loads(body)
    assert payload["nodeId"] == "test-node"
    assert payload["cells"][0]["slots"][1] == {"height": 2, "state": "value", "value": "two"}


def test_persistence_failure_answers_503_and_stops_the_server(servers):
    import shutil

    server = servers.start(["a"], initial=5)
    assert server.post("/v1/reserve", {"key": ["a"], "height": 1})[0] == 200
    shutil.rmtree(server.data_dir)  # the next commit cannot write its file
    status, answer = server.post("/v1/write", {"key": ["a"], "height": 1, "value": "x"})
    assert (status, answer["error"]) == (503, "persistence_failed"), answer
    assert server.proc.wait(timeout=30) == 4
    assert "could not be persisted" in server.log_text()
