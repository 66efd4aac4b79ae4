"""The aiohttp application: HTTP/JSON in front of a :class:`~.shard.Shard`.

Handlers validate the whole request before touching the shard, so a refused request
changes nothing. Every client mistake maps to a 4xx JSON body; a 500 means a bug.
Run it with ``handler_cancellation=True`` (as :mod:`.main` does) so that a client that
disconnects cancels its handler, which retracts a waiting read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from .cell import ReadStatus, ReserveResult
from .metrics import CONTENT_TYPE_LATEST, ServerMetrics
from .openapi import build_openapi
from .shard import ReadTimedOut, Shard, ShuttingDown, UnknownKey
from .store import PersistenceFailed
from .validation import (
    BadRequest,
    parse_backup_request,
    parse_body,
    parse_cell_request,
    parse_read_request,
    parse_write_request,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024
SHARD_KEY: Final = web.AppKey("shard", Shard)
METRICS_KEY: Final = web.AppKey("metrics", ServerMetrics)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class PayloadTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


def error_response(
    status: int, code: str, detail: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    body: dict[str, Any] = {"error": code}
    if detail is not None:
        body["detail"] = detail
    return web.json_response(body, status=status, headers=headers)


def _http_exception_response(exc: web.HTTPException, request: web.Request) -> web.Response:
    headers = {k: v for k, v in exc.headers.items() if k.lower() in {"allow"}}
    if exc.status == 404:
        return error_response(404, "not_found", f"no route {request.method} {request.path}")
    if exc.status == 405:
        return error_response(
            405, "method_not_allowed", f"{request.method} is not allowed here", headers
        )
    if exc.status == 413:
        return error_response(413, "payload_too_large", exc.text or "request body too large")
    code = exc.reason.lower().replace(" ", "_") if exc.reason else "http_error"
    return error_response(exc.status, code, exc.text or None, headers)


_OK: Final = json.dumps({"result": "ok"}).encode()
_APPLIED: Final = json.dumps({"applied": True}).encode()
_NOT_APPLIED: Final = json.dumps({"applied": False}).encode()


def _json_body(body: bytes) -> web.Response:
    """A 200 with a JSON body encoded beforehand (what json_response would send)."""
    return web.Response(body=body, content_type="application/json", charset="utf-8")


class _Handlers:
    def __init__(self, shard: Shard, metrics: ServerMetrics, max_body_bytes: int) -> None:
        self.shard = shard
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.encoding = shard.encoding
        self.openapi = json.dumps(build_openapi(shard.encoding, max_body_bytes)).encode()
        # metric children by label values: labels() costs more than the inc() itself
        self._requests: dict[tuple[str, str, str], Any] = {}
        self._latency: dict[tuple[str, str], Any] = {}
        self._operations: dict[tuple[str, str], Any] = {}
        self.allowed_methods: dict[str, set[str]] = {}  # by path, filled by create_app

    # -- plumbing ------------------------------------------------------------------------

    async def _body(self, request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
        length = request.content_length
        if length is not None and length > self.max_body_bytes:
            raise PayloadTooLarge(self.max_body_bytes)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise PayloadTooLarge(self.max_body_bytes) from None
        if len(raw) > self.max_body_bytes:
            raise PayloadTooLarge(self.max_body_bytes)
        return parse_body(raw, allow_empty=allow_empty)

    def _count(self, operation: str, outcome: str) -> None:
        child = self._operations.get((operation, outcome))
        if child is None:
            child = self._operations[operation, outcome] = self.metrics.operations.labels(
                operation, outcome
            )
        child.inc()

    def instrument(self, route: str, handler: Handler) -> Handler:
        """``handler``, answering JSON errors and counted in the request metrics under the
        route template ``route``. This wraps each route instead of being a middleware:
        aiohttp's middleware chain adds two coroutine layers to every request."""

        async def instrumented(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            status = "500"
            try:
                try:
                    response = await handler(request)
                except Exception as exc:  # CancelledError is not one
                    response = self._error_response(exc, request)
                status = str(response.status)
                return response
            except asyncio.CancelledError:
                status = "499"  # the client went away
                raise
            finally:
                self._observe(route, request.method, status, started)

        return instrumented

    def _observe(self, route: str, method: str, status: str, started: float) -> None:
        counter = self._requests.get((route, method, status))
        if counter is None:
            counter = self._requests[route, method, status] = self.metrics.requests.labels(
                route, method, status
            )
        counter.inc()
        histogram = self._latency.get((route, method))
        if histogram is None:
            histogram = self._latency[route, method] = self.metrics.latency.labels(
                route, method
            )
        histogram.observe(time.perf_counter() - started)

    def _error_response(self, exc: Exception, request: web.Request) -> web.Response:
        """The answer to a request whose handler raised ``exc`` (called in its except
        clause, so that an unexpected error is logged with its traceback)."""
        if isinstance(exc, BadRequest):
            return error_response(400, "bad_request", exc.detail)
        if isinstance(exc, UnknownKey):
            return error_response(404, "unknown_key", "this shard does not hold that key")
        if isinstance(exc, PayloadTooLarge):
            return error_response(
                413, "payload_too_large", f"request body is over {exc.limit} bytes"
            )
        if isinstance(exc, ShuttingDown):
            return error_response(503, "shutting_down", "the server is stopping; retry")
        if isinstance(exc, PersistenceFailed):
            self.metrics.persistence_failed.set(1)
            return error_response(503, "persistence_failed", f"state not persisted: {exc}")
        if isinstance(exc, web.HTTPException):
            return _http_exception_response(exc, request)
        log.exception("internal error handling %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error (see the server log)")

    async def unmatched(self, request: web.Request) -> web.Response:
        """Every request no route takes: 405 on a known path, else 404 (the router's
        answers, in JSON)."""
        allowed = self.allowed_methods.get(request.path)
        if allowed:
            raise web.HTTPMethodNotAllowed(request.method, allowed)
        raise web.HTTPNotFound()

    # -- shard API -----------------------------------------------------------------------

    async def reserve(self, request: web.Request) -> web.Response:
        req = parse_cell_request(await self._body(request), self.encoding)
        result = await self.shard.reserve(req.key, req.height)
        self._count("reserve", result.value)
        if result is ReserveResult.OK:
            return _json_body(_OK)
        return error_response(409, result.value)

    async def read(self, request: web.Request) -> web.Response:
        req = parse_read_request(await self._body(request), self.encoding)
        try:
            outcome = await self.shard.read(req.key, req.height, req.timeout)
        except ReadTimedOut:
            self._count("read", "timeout")
            return error_response(408, "timeout", f"not answerable within {req.timeout:g} seconds")
        self._count("read", outcome.status.value)
        if outcome.status is ReadStatus.OK:
            return web.json_response({"result": "ok", "value": outcome.value})
        return web.json_response({"result": "absent"})

    async def write(self, request: web.Request) -> web.Response:
        req = parse_write_request(await self._body(request), self.encoding)
        applied = await self.shard.write(req.key, req.height, req.value)
        self._count("write", "applied" if applied else "not_applied")
        return _json_body(_APPLIED if applied else _NOT_APPLIED)

    async def unreserve(self, request: web.Request) -> web.Response:
        req = parse_cell_request(await self._body(request), self.encoding)
        changed = await self.shard.unreserve(req.key, req.height)
        self._count("unreserve", "changed" if changed else "unchanged")
        return web.json_response({"result": "ok", "changed": changed})

    async def advance_watermark(self, request: web.Request) -> web.Response:
        req = parse_cell_request(await self._body(request), self.encoding)
        watermark = await self.shard.advance_watermark(req.key, req.height)
        self._count("advance_watermark", "ok")
        return web.json_response({"result": "ok", "watermark": watermark})

    async def backup(self, request: web.Request) -> web.Response:
        key = parse_backup_request(await self._body(request, allow_empty=True), self.encoding)
        values = await self.shard.backup(key)
        self._count("backup", "ok")
        return web.json_response({"result": "ok", "values": values})

    # -- introspection -------------------------------------------------------------------

    async def state(self, request: web.Request) -> web.Response:
        return web.json_response(await self.shard.describe())

    async def healthz(self, request: web.Request) -> web.Response:
        if self.shard.failure is not None:
            return web.json_response(
                {"status": "failing", "reason": f"persistence failed: {self.shard.failure}"},
                status=503,
            )
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        if self.shard.failure is not None:
            reason = f"persistence failed: {self.shard.failure}"
        elif self.shard.closing:
            reason = "shutting down"
        else:
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not_ready", "reason": reason}, status=503)

    async def metrics_handler(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def openapi_handler(self, request: web.Request) -> web.Response:
        return web.Response(body=self.openapi, content_type="application/json")


def create_app(
    shard: Shard,
    *,
    metrics: ServerMetrics | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> web.Application:
    """The application serving ``shard``. The shard's restore must already be done."""
    metrics = metrics if metrics is not None else ServerMetrics()
    metrics.track_waiting_readers(shard.waiting_readers)
    handlers = _Handlers(shard, metrics, max_body_bytes)
    # aiohttp's own limit is a backstop; _body() answers 413 itself
    app = web.Application(client_max_size=max_body_bytes + 1)
    app[SHARD_KEY] = shard
    app[METRICS_KEY] = metrics
    r = app.router
    routes: list[tuple[str, str, Handler]] = [
        ("POST", "/v1/reserve", handlers.reserve),
        ("POST", "/v1/read", handlers.read),
        ("POST", "/v1/write", handlers.write),
        ("POST", "/v1/unreserve", handlers.unreserve),
        ("POST", "/v1/advance-watermark", handlers.advance_watermark),
        ("POST", "/v1/backup", handlers.backup),
        ("GET", "/v1/state", handlers.state),
        ("GET", "/v1/openapi.json", handlers.openapi_handler),
        ("GET", "/healthz", handlers.healthz),
        ("GET", "/readyz", handlers.readyz),
        ("GET", "/metrics", handlers.metrics_handler),
    ]
    for method, path, handler in routes:
        instrumented = handlers.instrument(path, handler)
        if method == "GET":
            r.add_get(path, instrumented)
            handlers.allowed_methods[path] = {"GET", "HEAD"}
        else:
            r.add_post(path, instrumented)
            handlers.allowed_methods[path] = {method}
    # last: whatever no route above takes (404, or 405 on a known path)
    r.add_route("*", "/{tail:.*}", handlers.instrument("unmatched", handlers.unmatched))

    async def on_shutdown(_app: web.Application) -> None:
        shard.begin_shutdown()

    async def on_cleanup(_app: web.Application) -> None:
        await shard.close()

    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app
