"""Strict JSON: what the server accepts is exactly what it can store and send back.

Rejected: invalid UTF-8, ``NaN``/``Infinity``, numbers that overflow a double, integer
literals longer than 4000 digits, and nesting deeper than :data:`MAX_DEPTH`.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

MAX_DEPTH: Final = 256
MAX_INT_DIGITS: Final = 4000


class JSONValueError(ValueError):
    """Text that is not strict JSON; the message says why."""


def _parse_constant(name: str) -> Any:
    raise JSONValueError(f"{name} is not valid JSON")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONValueError(f"number {text[:40]} is out of range")
    return value


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JSONValueError(f"integer literal longer than {MAX_INT_DIGITS} digits")
    return int(text)


_DECODER: Final = json.JSONDecoder(
    parse_constant=_parse_constant, parse_float=_parse_float, parse_int=_parse_int
)
"""Built once: ``json.loads`` with hooks would build a decoder per call."""
_SHORT_DECODER: Final = json.JSONDecoder(parse_constant=_parse_constant, parse_float=_parse_float)
"""For text shorter than :data:`MAX_INT_DIGITS`, which cannot hold a longer integer."""


def loads_strict(data: str | bytes) -> Any:
    """Parse strict JSON or raise :class:`JSONValueError` naming the problem."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONValueError(f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    if data.startswith("\ufeff"):  # as json.loads
        raise JSONValueError("Unexpected UTF-8 BOM (decode using utf-8-sig): line 1 column 1 "
                             "(char 0)")
    try:
        value = (_SHORT_DECODER if len(data) <= MAX_INT_DIGITS else _DECODER).decode(data)
    except JSONValueError:
        raise
    except RecursionError:
        raise JSONValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise JSONValueError(str(exc)) from None
    # each level of nesting opens a bracket: text with few brackets cannot nest too deep
    if data.count("[") + data.count("{") > MAX_DEPTH and depth_exceeds(value, MAX_DEPTH):
        raise JSONValueError(f"nested deeper than {MAX_DEPTH} levels")
    return value


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests arrays/objects more than ``limit`` levels deep."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth + 1 > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
