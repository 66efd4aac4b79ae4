"""Plain HTTP to one shard server on 127.0.0.1 (a local process, or a pod reached
through ``kubectl port-forward``): sync requests for raw bodies and polling."""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from typing import Any

HOST = "127.0.0.1"


class ShardHTTP:
    """Requests to the shard server listening on ``HOST:self.port``."""

    port: int

    @property
    def address(self) -> tuple[str, int]:
        return HOST, self.port

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> tuple[int, Any]:
        """One request on a fresh connection; returns (status, parsed JSON or text)."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            if isinstance(body, str):
                body = body.encode()
            hdrs = {"Content-Type": "application/json"} if body is not None else {}
            hdrs.update(headers or {})
            conn.request(method, path, body=body, headers=hdrs)
            response = conn.getresponse()
            raw = response.read()
            ctype = response.getheader("Content-Type", "")
        finally:
            conn.close()
        if ctype.startswith("application/json"):
            return response.status, json.loads(raw)
        return response.status, raw.decode()

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        return self.request("POST", path, json.dumps(body))

    def state(self) -> dict[str, Any]:
        status, body = self.request("GET", "/v1/state")
        assert status == 200, body
        return body

    def cell(self) -> dict[str, Any]:
        (cell,) = self.state()["cells"]
        return cell

    def waiting_readers(self) -> int:
        return self.cell()["waitingReaders"]

    def wait_for_waiting_readers(self, count: int, timeout: float = 20.0) -> None:
        """Poll until the server reports ``count`` waiting readers (hang guard only)."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.waiting_readers()
            if current == count:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"waiting readers stayed {current}, expected {count}")
            time.sleep(0.01)

    async def await_waiting_readers(self, count: int, guard: float = 20.0) -> None:
        """Async form of :meth:`wait_for_waiting_readers`: lets the test's tasks run."""
        deadline = time.monotonic() + guard
        while True:
            current = await asyncio.to_thread(self.waiting_readers)
            if current == count:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"waiting readers stayed {current}, expected {count}")
            await asyncio.sleep(0.01)

    def metric(self, name: str) -> float:
        status, text = self.request("GET", "/metrics")
        assert status == 200
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"metric {name} not exported")
