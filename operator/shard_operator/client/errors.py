"""Errors of the shard API client. Every error a shard answers becomes one of these."""

from __future__ import annotations


class ShardError(Exception):
    """Base class: a shard call did not succeed.

    ``service`` is the service called, ``status`` the HTTP status (``None`` when there was
    no answer), ``code`` the server's error code and ``detail`` its explanation.
    """

    def __init__(
        self,
        message: str,
        *,
        service: str | None = None,
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.service = service
        self.status = status
        self.code = code
        self.detail = detail


class BadRequest(ShardError):
    """400: the server refused the request as malformed (nothing changed)."""


class PayloadTooLarge(BadRequest):
    """413: the request body was over the server's size limit."""


class UnknownKey(ShardError):
    """404 ``unknown_key``: that shard does not hold the key."""


class Occupied(ShardError):
    """409 ``occupied``: the slot is already reserved or holds a value."""


class ReservingUnderWatermark(ShardError):
    """409 ``reserving_write_under_write_watermark``: height <= the write watermark."""


class ReadTimeout(ShardError):
    """408 ``timeout`` (or the client-side limit ran out): the read was not answered."""


class ShardUnavailable(ShardError):
    """No answer (connection refused or reset) or 503 (stopping, persistence failed)."""


class ShardProtocolError(ShardError):
    """An answer this client does not understand (wrong server, wrong version)."""


__all__ = [
    "BadRequest",
    "Occupied",
    "PayloadTooLarge",
    "ReadTimeout",
    "ReservingUnderWatermark",
    "ShardError",
    "ShardProtocolError",
    "ShardUnavailable",
    "UnknownKey",
]
