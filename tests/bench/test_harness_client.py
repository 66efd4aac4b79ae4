"""The harness's own client (bench/k8s.py) against a loopback socket server."""

from __future__ import annotations

import asyncio

from bench.k8s import KubeHttp

ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n"
          b"Connection: keep-alive\r\n\r\n{\"ok\": true}")


async def serve(close_after: int) -> tuple[asyncio.Server, list[int]]:
    """Answers every request; the connection that served ``close_after`` requests is
    closed by the server without a word, as an API server under load closes idle ones."""
    served: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered = 0
        while not reader.at_eof():
            try:
                await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # the client closed its end
            if answered == close_after:
                writer.close()  # the request is read, and never answered
                return
            writer.write(ANSWER)
            await writer.drain()
            answered += 1
            served.append(answered)

    return await asyncio.start_server(handle, "127.0.0.1", 0), served


async def test_a_request_on_a_closed_pooled_connection_is_sent_again_once() -> None:
    server, served = await serve(close_after=1)
    port = server.sockets[0].getsockname()[1]
    client = KubeHttp.plain(f"http://127.0.0.1:{port}")
    try:
        # aiohttp replays idempotent verbs itself; a POST or PATCH it leaves to us.
        assert await client.request("POST", "/first", {}) == (200, {"ok": True})
        assert await client.request("PATCH", "/second", {}) == (200, {"ok": True})
        assert served == [1, 1]  # each answer came from a fresh connection
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
