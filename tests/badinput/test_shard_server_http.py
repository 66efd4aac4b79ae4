"""Shard server layer of the bad-input corpus: malformed, oversized and slow requests to a
real ``shard-server`` on 127.0.0.1 get the exact status and error, the server keeps
serving, and its state is unchanged."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.badinput.cases import HTTP, HttpCase

pytestmark = pytest.mark.timeout(120)
MAX_BODY = 4096


@pytest.fixture(scope="module")
def server(module_servers):
    server = module_servers.start(["a"], initial=5, args=["--max-body-bytes", str(MAX_BODY)])
    assert server.post("/v1/reserve", {"key": ["a"], "height": 3})[0] == 200
    assert server.post("/v1/write", {"key": ["a"], "height": 3, "value": "three"})[0] == 200
    return server


@pytest.mark.parametrize("case", HTTP, ids=[c.id for c in HTTP])
def test_bad_request_gets_its_exact_answer_and_changes_nothing(server, case: HttpCase) -> None:
    before = server.state()
    status, answer = server.request(case.method, case.path, case.body, case.headers)
    assert (status, answer["error"]) == (case.status, case.error), answer
    assert case.detail in answer["detail"], answer
    assert server.state() == before


def _raw(server, data: bytes, *, pause: float = 0.0, chunk: int = 0) -> socket.socket:
    sock = socket.create_connection(server.address, timeout=30)
    if chunk:
        for start in range(0, len(data), chunk):
            sock.sendall(data[start:start + chunk])
            time.sleep(pause)
    else:
        sock.sendall(data)
    return sock


def _answer(sock: socket.socket) -> tuple[int, dict]:
    raw = b""
    while True:
        part = sock.recv(65536)
        if not part:
            break
        raw += part
        head, _, body = raw.partition(b"\r\n\r\n")
        if b"content-length" in head.lower():
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            if len(body) >= length:
                break
    sock.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def test_slow_clients_do_not_block_others_and_change_nothing(server) -> None:
    """Three clients trickle a request byte by byte; meanwhile others are served at once."""
    before = server.state()
    body = json.dumps({"key": ["a"], "height": 9, "value": 1}).encode()
    request = (b"POST /v1/write HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    slow = [_raw(server, request[:20]) for _ in range(3)]
    started = time.monotonic()
    for _ in range(5):
        assert server.request("GET", "/readyz", timeout=5)[0] == 200
    assert time.monotonic() - started < 5
    for sock in slow:  # finish them slowly; slot 9 is not reserved: not applied
        for byte in request[20:] + body:
            sock.sendall(bytes([byte]))
        assert _answer(sock) == (200, {"applied": False})
    assert server.state() == before


def test_client_that_disconnects_mid_body_changes_nothing(server) -> None:
    before = server.state()
    body = json.dumps({"key": ["a"], "height": 3, "value": "changed"}).encode()
    request = (b"POST /v1/write HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:-5])
    _raw(server, request).close()
    time.sleep(0.2)
    assert server.request("GET", "/healthz")[0] == 200
    assert server.state() == before


def test_oversized_body_sent_slowly_is_refused_without_reading_it_all(server) -> None:
    before = server.state()
    body = b'{"key":["a"],"height":3,"value":"' + b"x" * (MAX_BODY * 4) + b'"}'
    request = (b"POST /v1/write HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    sock = _raw(server, request + body[:100])
    status, answer = _answer(sock)
    assert (status, answer["error"]) == (413, "payload_too_large")
    assert server.state() == before


def test_garbage_request_lines_are_refused_and_the_server_lives(server) -> None:
    before = server.state()
    for junk in (b"\x00\x01\x02 garbage\r\n\r\n", b"GET /v1/state HTTP/9.9\r\n\r\n",
                 b"POST /v1/write HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                 b"POST /v1/write HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
        sock = _raw(server, junk)
        data = sock.recv(4096)
        sock.close()
        assert data.startswith(b"HTTP/1.") and b" 400 " in data.split(b"\r\n")[0], data[:200]
    assert server.request("GET", "/healthz")[0] == 200
    assert server.state() == before
