"""Checking request bodies; every problem becomes a :class:`BadRequest` that names it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from ..keycodec import InvalidKey, Key, KeyEncoding, decode_key
from .values import JSONValueError, loads_strict

MAX_HEIGHT: Final = 2**63 - 1
MAX_TIMEOUT_SECONDS: Final = 86400.0


class BadRequest(ValueError):
    """A request the server refuses with 400; ``detail`` names the problem."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class CellRequest:
    key: Key
    height: int


@dataclass(frozen=True, slots=True)
class WriteRequest:
    key: Key
    height: int
    value: Any


@dataclass(frozen=True, slots=True)
class ReadRequest:
    key: Key
    height: int
    timeout: float | None


def parse_body(raw: bytes, *, allow_empty: bool = False) -> dict[str, Any]:
    """The JSON object in a request body."""
    if not raw and allow_empty:  # an optional body left out
        return {}
    if not raw.strip():  # a body that is there must be a JSON object, even if optional
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        body = loads_strict(raw)
    except JSONValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"request body must be a JSON object, not {_json_type(body)}")
    return body


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _key(body: dict[str, Any], encoding: KeyEncoding) -> Key:
    if "key" not in body:
        raise BadRequest("field 'key' is required (a list of key segments)")
    segments = body["key"]
    if not isinstance(segments, list):
        raise BadRequest(f"field 'key' must be an array of strings, not {_json_type(segments)}")
    for index, segment in enumerate(segments):
        if not isinstance(segment, str):
            raise BadRequest(
                f"field 'key' item {index} must be a string, not {_json_type(segment)}"
            )
    try:
        return decode_key(segments, encoding)
    except InvalidKey as exc:
        raise BadRequest(f"field 'key': {exc} (this shard uses {encoding.value} keys)") from None


def _height(body: dict[str, Any]) -> int:
    if "height" not in body:
        raise BadRequest("field 'height' is required (an integer >= 0)")
    height = body["height"]
    # JSON does not tell 5 from 5.0 (JSON Schema calls both integers), but true is not 1
    if type(height) is float and height.is_integer():
        height = int(height)
    if type(height) is not int or height < 0:
        raise BadRequest(
            f"field 'height' must be an integer >= 0, not {_json_type(height)} "
            f"{_short(body['height'])}"
        )
    if height > MAX_HEIGHT:
        raise BadRequest(f"field 'height' must be at most {MAX_HEIGHT} (int64)")
    return height


def _short(value: Any) -> str:
    """A short rendering of a JSON value for error details."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_cell_request(body: dict[str, Any], encoding: KeyEncoding) -> CellRequest:
    """``key`` and ``height``: reserve, unreserve, advance-watermark."""
    return CellRequest(_key(body, encoding), _height(body))


def parse_write_request(body: dict[str, Any], encoding: KeyEncoding) -> WriteRequest:
    key, height = _key(body, encoding), _height(body)
    if "value" not in body:
        raise BadRequest("field 'value' is required (any JSON value, null included)")
    return WriteRequest(key, height, body["value"])


def parse_read_request(body: dict[str, Any], encoding: KeyEncoding) -> ReadRequest:
    key, height = _key(body, encoding), _height(body)
    timeout = body.get("timeoutSeconds")
    if timeout is not None or "timeoutSeconds" in body:
        # comparisons only: math.isfinite() would overflow on a huge integer (strict JSON
        # has no NaN or infinity)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 <= timeout <= MAX_TIMEOUT_SECONDS
        ):
            raise BadRequest(
                f"field 'timeoutSeconds' must be a number from 0 to {MAX_TIMEOUT_SECONDS:g}, "
                f"not {_json_type(timeout)} {_short(timeout)}"
            )
        timeout = float(timeout)
    return ReadRequest(key, height, timeout)


def parse_backup_request(body: dict[str, Any], encoding: KeyEncoding) -> Key | None:
    """Backup takes an optional ``key``; without it every key held is counted."""
    if "key" not in body:
        return None
    return _key(body, encoding)
