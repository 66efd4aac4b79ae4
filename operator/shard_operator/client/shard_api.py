"""Async client of the shard server API, for the Ordering side.

A :class:`ShardClient` reaches shards by *service name* through a resolver (a callable,
sync or async, from service name to ``(host, port)``): in Kubernetes the key map gives the
Service DNS name; tests map names to local processes on 127.0.0.1.

Keys are sequences of segments. ``str`` segments are sent as they are (so they must
already be in the server's key encoding); ``bytes`` segments are encoded with the
client's ``key_encoding`` (UTF-8 text, or base64).

A read blocks on the server until it can be answered. Cancelling the awaiting task closes
its connection, and the server then retracts the read.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from yarl import URL

from ..keycodec import KeySegments, encode_segment
from .errors import (
    BadRequest,
    Occupied,
    PayloadTooLarge,
    ReadTimeout,
    ReservingUnderWatermark,
    ShardError,
    ShardProtocolError,
    ShardUnavailable,
    UnknownKey,
)

Address = tuple[str, int]
Resolver = Callable[[str], Address | Awaitable[Address]]


@dataclass(frozen=True, slots=True)
class ReadResult:
    """The answer of a read: a value (``present``; ``None`` is a value) or absent."""

    present: bool
    value: Any = None


ABSENT: Final = ReadResult(False)


class ShardClient:
    """Calls the shard API of shard servers named by service.

    Use as ``async with ShardClient(resolver) as client:`` or call :meth:`close`. A
    session passed in is used as is and not closed by the client.
    """

    def __init__(
        self,
        resolver: Resolver,
        *,
        session: aiohttp.ClientSession | None = None,
        key_encoding: str = "utf8",
        request_timeout: float = 30.0,
        connect_timeout: float = 5.0,
        read_grace: float = 5.0,
        connection_limit: int = 0,
    ) -> None:
        if key_encoding not in ("utf8", "base64"):
            raise ValueError(f"key_encoding must be 'utf8' or 'base64', not {key_encoding!r}")
        self._resolver = resolver
        self._session = session
        self._owns_session = session is None
        self._key_encoding = key_encoding
        self._request_timeout = request_timeout
        self._connect_timeout = connect_timeout
        self._read_grace = read_grace
        self._connection_limit = connection_limit  # 0 = no limit: each waiting read holds one

    async def __aenter__(self) -> ShardClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    # -- the shard API -----------------------------------------------------------------

    async def reserve(self, service: str, key: KeySegments, height: int) -> None:
        """Reserve a slot. Raises :class:`Occupied` or :class:`ReservingUnderWatermark`."""
        await self._post(service, "/v1/reserve", self._body(key, height))

    async def read(
        self,
        service: str,
        key: KeySegments,
        height: int,
        timeout: float | None = None,
    ) -> ReadResult:
        """Blocking read; ``timeout`` seconds (0: only if answerable at once) -> ReadTimeout."""
        body = self._body(key, height)
        if timeout is not None:
            body["timeoutSeconds"] = timeout
            client_timeout = aiohttp.ClientTimeout(
                total=timeout + self._read_grace, sock_connect=self._connect_timeout
            )
        else:
            client_timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=self._connect_timeout, sock_read=None
            )
        payload = await self._post(service, "/v1/read", body, client_timeout=client_timeout)
        if payload.get("result") == "ok" and "value" in payload:
            return ReadResult(True, payload["value"])
        if payload.get("result") == "absent":
            return ABSENT
        raise ShardProtocolError(f"unexpected read answer {payload!r}", service=service)

    async def write(self, service: str, key: KeySegments, height: int, value: Any) -> bool:
        """Write into a reserved slot; return whether it applied (False: slot not reserved)."""
        body = self._body(key, height)
        body["value"] = value
        payload = await self._post(service, "/v1/write", body)
        applied = payload.get("applied")
        if not isinstance(applied, bool):
            raise ShardProtocolError(f"unexpected write answer {payload!r}", service=service)
        return applied

    async def unreserve(self, service: str, key: KeySegments, height: int) -> bool:
        """Empty a reserved slot; return whether it was reserved."""
        payload = await self._post(service, "/v1/unreserve", self._body(key, height))
        return bool(payload.get("changed", False))

    async def advance_watermark(self, service: str, key: KeySegments, height: int) -> int:
        """Raise the watermark to at least ``height``; return the watermark after the call."""
        payload = await self._post(service, "/v1/advance-watermark", self._body(key, height))
        return int(payload["watermark"])

    async def backup(self, service: str, key: KeySegments | None = None) -> int:
        """Confirm the state is persisted; return how many values it holds (for ``key``)."""
        body = {"key": self._segments(key)} if key is not None else {}
        payload = await self._post(service, "/v1/backup", body)
        return int(payload["values"])

    async def state(self, service: str) -> dict[str, Any]:
        """The shard's cells (debugging view)."""
        status, payload = await self._call(service, "GET", "/v1/state")
        if status != 200:
            self._raise(service, status, payload)
        return payload

    async def health(self, service: str) -> dict[str, Any]:
        """``/healthz``; raises :class:`ShardUnavailable` unless the shard is healthy."""
        status, payload = await self._call(service, "GET", "/healthz")
        if status != 200:
            raise ShardUnavailable(
                f"shard {service} is not healthy: {payload!r}", service=service, status=status
            )
        return payload

    async def ready(self, service: str) -> bool:
        """Whether ``/readyz`` answers 200 (False also when the shard cannot be reached)."""
        try:
            status, _ = await self._call(service, "GET", "/readyz")
        except ShardUnavailable:
            return False
        return status == 200

    # -- plumbing ----------------------------------------------------------------------

    def _segments(self, key: KeySegments) -> list[str]:
        if isinstance(key, str | bytes):
            raise TypeError("key must be a sequence of segments, not a single str/bytes")
        out = []
        for segment in key:
            if isinstance(segment, bytes):
                if self._key_encoding == "base64":
                    out.append(encode_segment(segment))
                else:
                    out.append(segment.decode("utf-8"))
            elif isinstance(segment, str):
                out.append(segment)
            else:
                raise TypeError(f"key segments must be str or bytes, not {type(segment)!r}")
        return out

    def _body(self, key: KeySegments, height: int) -> dict[str, Any]:
        return {"key": self._segments(key), "height": height}

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connection_limit),
            )
        return self._session

    async def _resolve(self, service: str) -> Address:
        address = self._resolver(service)
        if inspect.isawaitable(address):
            address = await address
        host, port = address
        return host, port

    async def _post(
        self,
        service: str,
        path: str,
        body: dict[str, Any],
        *,
        client_timeout: aiohttp.ClientTimeout | None = None,
    ) -> dict[str, Any]:
        status, payload = await self._call(
            service, "POST", path, body, client_timeout=client_timeout
        )
        if status != 200:
            self._raise(service, status, payload)
        if not isinstance(payload, dict):
            raise ShardProtocolError(f"unexpected answer {payload!r}", service=service)
        return payload

    async def _call(
        self,
        service: str,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        client_timeout: aiohttp.ClientTimeout | None = None,
    ) -> tuple[int, Any]:
        host, port = await self._resolve(service)
        url = URL.build(scheme="http", host=host, port=port, path=path)
        data = json.dumps(body).encode("utf-8") if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else None
        if client_timeout is None:
            client_timeout = aiohttp.ClientTimeout(
                total=self._request_timeout, sock_connect=self._connect_timeout
            )
        try:
            async with self._get_session().request(
                method, url, data=data, headers=headers, timeout=client_timeout
            ) as response:
                try:
                    raw = await response.read()
                except BaseException:
                    response.close()  # never put a half-read connection back in the pool
                    raise
                status = response.status
        except TimeoutError:
            if path == "/v1/read":
                raise ReadTimeout(
                    f"read from {service} not answered in time", service=service, code="timeout"
                ) from None
            raise ShardUnavailable(
                f"{method} {path} on {service} timed out", service=service
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ShardUnavailable(
                f"{method} {path} on {service} ({host}:{port}) failed: {exc!r}", service=service
            ) from exc
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            raise ShardProtocolError(
                f"{method} {path} on {service}: answer {status} is not JSON: {raw[:200]!r}",
                service=service,
                status=status,
            ) from None
        return status, payload

    @staticmethod
    def _raise(service: str, status: int, payload: Any) -> None:
        code = payload.get("error") if isinstance(payload, dict) else None
        detail = payload.get("detail") if isinstance(payload, dict) else None
        kind: type[ShardError]
        if status == 400:
            kind = BadRequest
        elif status == 413:
            kind = PayloadTooLarge
        elif status == 404 and code == "unknown_key":
            kind = UnknownKey
        elif status == 408 and code == "timeout":
            kind = ReadTimeout
        elif status == 409 and code == "occupied":
            kind = Occupied
        elif status == 409 and code == "reserving_write_under_write_watermark":
            kind = ReservingUnderWatermark
        elif status == 503:
            kind = ShardUnavailable
        else:
            kind = ShardProtocolError
        message = f"shard {service}: {status} {code or ''}{': ' + detail if detail else ''}"
        raise kind(message.strip(), service=service, status=status, code=code, detail=detail)


__all__ = ["ABSENT", "Address", "ReadResult", "Resolver", "ShardClient"]
