"""Blocking readers over HTTP: disconnect retracts, timeouts, fan-out, and the client."""

from __future__ import annotations

import asyncio
import base64

import aiohttp
import pytest

from shard_operator.client import (
    ABSENT,
    BadRequest,
    ReadResult,
    ReadTimeout,
    ShardClient,
    ShardUnavailable,
    UnknownKey,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def server(servers):
    return servers.start(["a"], initial=5)


@pytest.fixture
async def client(server):
    async with ShardClient(lambda _: server.address) as shard_client:
        yield shard_client


async def test_a_client_that_disconnects_has_retracted_its_read(server):
    url = f"http://{server.address[0]}:{server.address[1]}/v1/read"
    async with aiohttp.ClientSession() as session:

        async def read() -> None:
            async with session.post(url, json={"key": ["a"], "height": 10}) as response:
                await response.read()

        tasks = [asyncio.create_task(read()) for _ in range(3)]
        await server.await_waiting_readers(3)
        assert await asyncio.to_thread(server.metric, "shard_waiting_readers") == 3
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await server.await_waiting_readers(0)
    assert await asyncio.to_thread(server.metric, "shard_waiting_readers") == 0


async def test_cancelling_a_client_read_retracts_it(server, client):
    read = asyncio.create_task(client.read("a", ["a"], 10))
    await server.await_waiting_readers(1)
    read.cancel()
    with pytest.raises(asyncio.CancelledError):
        await read
    await server.await_waiting_readers(0)
    # the client is still usable, and a later change answers no ghost reader
    await client.advance_watermark("a", ["a"], 20)
    assert await client.read("a", ["a"], 10) == ReadResult(True, 5)


async def test_timeout_answers_408_and_forgets_the_reader(server, client):
    with pytest.raises(ReadTimeout) as info:
        await client.read("a", ["a"], 10, timeout=0.05)
    assert (info.value.status, info.value.code) == (408, "timeout")
    with pytest.raises(ReadTimeout):
        await client.read("a", ["a"], 10, timeout=0)
    assert server.waiting_readers() == 0
    # a read that can be answered at once is answered even with a zero timeout
    assert await client.read("a", ["a"], 1, timeout=0) == ReadResult(True, 5)


async def test_one_write_answers_many_waiting_readers(server, client):
    await client.reserve("a", ["a"], 3)
    await client.advance_watermark("a", ["a"], 9)
    reads = [asyncio.create_task(client.read("a", ["a"], 4 + i % 6)) for i in range(40)]
    await server.await_waiting_readers(40)
    assert await client.write("a", ["a"], 3, [1, 2, 3]) is True
    assert await asyncio.gather(*reads) == [ReadResult(True, [1, 2, 3])] * 40
    assert server.waiting_readers() == 0


async def test_client_errors(server, client):
    with pytest.raises(UnknownKey) as info:
        await client.reserve("a", ["nope"], 5)
    assert info.value.status == 404 and info.value.service == "a"
    with pytest.raises(BadRequest) as bad:
        await client.reserve("a", ["a"], -1)
    assert "height" in bad.value.detail
    with pytest.raises(TypeError):
        await client.reserve("a", "a", 5)  # a key is a sequence of segments
    server.kill()
    with pytest.raises(ShardUnavailable):
        await client.reserve("a", ["a"], 5)
    assert await client.ready("a") is False


async def test_client_introspection(server, client):
    assert await client.health("a") == {"status": "ok"}
    assert await client.ready("a") is True
    state = await client.state("a")
    assert state["cells"][0]["slots"] == [{"height": 0, "state": "value", "value": 5}]
    assert await client.backup("a") == 1
    assert await client.backup("a", ["a"]) == 1
    assert await client.unreserve("a", ["a"], 7) is False


async def test_base64_keys_of_arbitrary_bytes(servers):
    key = [b"\x00\xff", b"a"]
    wire = [base64.b64encode(segment).decode() for segment in key]
    server = servers.start(wire, encoding="base64")
    async with ShardClient(lambda _: server.address, key_encoding="base64") as client:
        assert await client.read("s", key, 1) == ABSENT  # bytes segments, encoded by the client
        await client.reserve("s", wire, 1)  # str segments: already in the wire encoding
        assert await client.write("s", key, 1, "bin") is True
        await client.advance_watermark("s", key, 1)
        assert await client.read("s", key, 2) == ReadResult(True, "bin")
        with pytest.raises(UnknownKey):
            await client.read("s", [b"\x00\xff"], 1)
        with pytest.raises(BadRequest) as info:
            await client.read("s", ["not base64!", "YQ=="], 1)
        assert "key segment 0 is not valid base64" in info.value.detail
    assert server.cell()["key"] == wire
