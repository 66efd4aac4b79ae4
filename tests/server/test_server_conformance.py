"""The original's shard conformance cases (anoma-semantics.md), over HTTP.

Schema ``[{["a"], 5}, ["b"], {["c"], 15}]``: one real ``shard-server`` process per key,
called through :class:`ShardClient` with a resolver from service name to 127.0.0.1:port.
Each case starts from fresh shards, as the original's test cases did.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from shard_operator.client import (
    ABSENT,
    Occupied,
    ReadResult,
    ReservingUnderWatermark,
    ShardClient,
    UnknownKey,
)

pytestmark = pytest.mark.timeout(120)

A, B, C = ["a"], ["b"], ["c"]


@pytest.fixture
def shards(servers):
    made = {
        "shard-a": servers.make(A, initial=5),
        "shard-b": servers.make(B),
        "shard-c": servers.make(C, initial=15),
    }
    for server in made.values():
        server.spawn()
    for server in made.values():
        server.wait_ready()
    return made


@pytest.fixture
async def client(shards) -> AsyncIterator[ShardClient]:
    async def resolve(service: str) -> tuple[str, int]:  # an async resolver
        return shards[service].address

    async with ShardClient(resolve) as shard_client:
        yield shard_client


def slots(server) -> dict[int, object]:
    """height -> value, or "<reserved>"."""
    return {
        s["height"]: s["value"] if s["state"] == "value" else "<reserved>"
        for s in server.cell()["slots"]
    }


async def test_start_values(client, shards):
    assert slots(shards["shard-a"]) == {0: 5}
    assert slots(shards["shard-b"]) == {}
    assert slots(shards["shard-c"]) == {0: 15}
    assert await client.read("shard-a", A, 1) == ReadResult(True, 5)
    assert await client.read("shard-b", B, 1) == ABSENT
    assert await client.read("shard-c", C, 1) == ReadResult(True, 15)
    assert shards["shard-a"].cell()["watermark"] == 0
    with pytest.raises(UnknownKey):
        await client.read("shard-a", ["d"], 1)
    with pytest.raises(UnknownKey):
        await client.reserve("shard-a", B, 1)


async def test_null_initial_value_is_a_value(servers):
    server = servers.start(["n"], initial=None)
    async with ShardClient(lambda _: server.address) as client:  # a sync resolver
        assert await client.read("n", ["n"], 1) == ReadResult(True, None)
        assert await client.read("n", ["n"], 0) == ABSENT


async def test_read_blocks_until_the_watermark_advances(client, shards):
    read_b = asyncio.create_task(client.read("shard-b", B, 4))
    read_c = asyncio.create_task(client.read("shard-c", C, 4))
    await shards["shard-b"].await_waiting_readers(1)
    await shards["shard-c"].await_waiting_readers(1)
    assert not read_b.done() and not read_c.done()  # watermark 0: 4 > 0 + 1

    assert await client.advance_watermark("shard-b", B, 5) == 5
    assert await read_b == ABSENT
    assert not read_c.done()  # another shard's watermark does not matter
    await client.advance_watermark("shard-c", C, 5)
    assert await read_c == ReadResult(True, 15)
    assert shards["shard-b"].waiting_readers() == 0


async def test_queued_reads_and_reservation(client, shards):
    server = shards["shard-a"]
    r3 = asyncio.create_task(client.read("shard-a", A, 3))
    r4 = asyncio.create_task(client.read("shard-a", A, 4))
    r14 = asyncio.create_task(client.read("shard-a", A, 14))
    await server.await_waiting_readers(3)

    await client.reserve("shard-a", A, 3)
    assert not (r3.done() or r4.done() or r14.done())
    await client.advance_watermark("shard-a", A, 5)
    assert await r3 == ReadResult(True, 5)  # below 3 only height 0 holds something
    assert server.waiting_readers() == 2  # 4 waits for the reservation at 3; 14 for 14 <= 6
    assert not r4.done()

    assert await client.write("shard-a", A, 3, 55) is True
    assert await r4 == ReadResult(True, 55)
    assert server.waiting_readers() == 1
    assert not r14.done()

    r14.cancel()  # retract: the connection closes and the server forgets the reader
    await server.await_waiting_readers(0)

    await client.advance_watermark("shard-a", A, 30)
    assert await client.read("shard-a", A, 12) == ReadResult(True, 55)
    with pytest.raises(ReservingUnderWatermark):
        await client.reserve("shard-a", A, 10)
    assert slots(server) == {0: 5, 3: 55}


async def test_reserving_twice_is_occupied(client, shards):
    await client.reserve("shard-a", A, 20)
    with pytest.raises(Occupied):
        await client.reserve("shard-a", A, 20)  # reserved
    assert await client.write("shard-a", A, 20, "x") is True
    with pytest.raises(Occupied):
        await client.reserve("shard-a", A, 20)  # holds a value
    assert await client.write("shard-a", A, 20, "y") is False  # no longer reserved
    assert await client.write("shard-a", A, 21, "z") is False  # never reserved
    assert slots(shards["shard-a"]) == {0: 5, 20: "x"}


async def test_write_below_the_watermark_applies_and_backup(client, shards):
    server = shards["shard-a"]
    await client.reserve("shard-a", A, 3)
    await client.advance_watermark("shard-a", A, 5)
    assert await client.write("shard-a", A, 3, 55)

    await client.reserve("shard-a", A, 7)
    await client.reserve("shard-a", A, 11)
    assert await client.write("shard-a", A, 11, "Hi Life") is True
    await client.advance_watermark("shard-a", A, 12)
    assert await client.read("shard-a", A, 12) == ReadResult(True, "Hi Life")
    assert await client.write("shard-a", A, 7, "Family Mart") is True  # 7 < watermark 12
    assert await client.read("shard-a", A, 8) == ReadResult(True, "Family Mart")

    assert await client.backup("shard-a") == 4
    assert await client.backup("shard-a", A) == 4
    expected = {0: 5, 3: 55, 7: "Family Mart", 11: "Hi Life"}
    assert slots(server) == expected

    # the backup is read back: a restarted shard has it all
    assert server.terminate() == 0
    server.start()
    assert slots(server) == expected
    assert server.cell()["watermark"] == 12


async def test_unreserve_empties_and_releases_a_blocked_read(client, shards):
    server = shards["shard-a"]
    await client.reserve("shard-a", A, 7)
    await client.reserve("shard-a", A, 11)
    await client.advance_watermark("shard-a", A, 12)
    r12 = asyncio.create_task(client.read("shard-a", A, 12))
    await server.await_waiting_readers(1)

    assert await client.unreserve("shard-a", A, 7) is True
    assert server.waiting_readers() == 1  # still blocked by the reservation at 11
    assert not r12.done()
    assert await client.unreserve("shard-a", A, 11) is True
    assert await r12 == ReadResult(True, 5)

    assert slots(server) == {0: 5}
    assert await client.unreserve("shard-a", A, 11) is False
    assert await client.write("shard-a", A, 7, "late") is False
