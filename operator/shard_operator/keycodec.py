"""The one key codec, shared by the operator, the client and the shard server.

A key is a tuple of byte segments; on the wire (a spec, the environment, a request, the
key map) each segment is a string. With the ``utf8`` encoding a segment is text,
encoded as UTF-8; with ``base64`` it is the standard, padded base64 (RFC 4648 section 4)
of arbitrary bytes, in canonical form only (``YQ==``, never ``YR==``), so that one key
has exactly one spelling in each encoding. Two keys are the same key exactly when their
byte segments are equal, so ``["a", "b"]`` and ``["ab"]`` are different keys.

Standard library only: the shard server image imports it without kopf or the
Kubernetes client.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import json
from collections.abc import Sequence

Key = tuple[bytes, ...]
"""A key: its segments' bytes. The one key type of the operator, client and server."""
KeySegments = Sequence[str | bytes]
"""A key as a caller gives it: text segments and/or raw bytes segments."""


class KeyEncoding(enum.StrEnum):
    UTF8 = "utf8"
    BASE64 = "base64"


class InvalidKey(ValueError):
    """A key, segment, encoding or node id that cannot be used."""


def decode_segment(segment: str, encoding: KeyEncoding | str) -> bytes:
    """The bytes of one wire segment; :class:`InvalidKey` says why it is not one."""
    if not isinstance(segment, str):
        raise InvalidKey(f"must be a string, not {type(segment).__name__}")
    if encoding == KeyEncoding.UTF8:
        try:
            return segment.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidKey("is not valid Unicode text (lone surrogate); use base64") from exc
    if encoding != KeyEncoding.BASE64:
        raise InvalidKey(f"has unknown key encoding {encoding!r}; use utf8 or base64")
    try:
        raw = base64.b64decode(segment.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise InvalidKey("is not valid base64") from exc
    if encode_segment(raw) != segment:
        raise InvalidKey(f"is not canonical padded base64 (the canonical form of these "
                         f"bytes is {encode_segment(raw)!r})")
    return raw


def encode_segment(raw: bytes) -> str:
    """The canonical base64 spelling of one segment."""
    return base64.b64encode(raw).decode("ascii")


def decode_key(segments: Sequence[str], encoding: KeyEncoding | str) -> Key:
    """The key named by wire ``segments``; :class:`InvalidKey` names the bad segment."""
    out = []
    for index, segment in enumerate(segments):
        try:
            out.append(decode_segment(segment, encoding))
        except InvalidKey as exc:
            raise InvalidKey(f"key segment {index} {exc}") from None
    return tuple(out)


def encode_key(key: Key, encoding: KeyEncoding | str) -> list[str]:
    """Wire segments for ``key``; bytes that are not UTF-8 are shown with ``\\x`` escapes
    under utf8 (use base64 for them)."""
    if encoding == KeyEncoding.UTF8:
        return [segment.decode("utf-8", errors="backslashreplace") for segment in key]
    return [encode_segment(segment) for segment in key]


def key_to_base64(key: Key) -> list[str]:
    """Encoding-independent form (the shard server's state file)."""
    return encode_key(key, KeyEncoding.BASE64)


def key_to_json(key: Key) -> str:
    """The key as people read it: ``["a","b"]``, or ``{"base64":[...]}`` for binary keys.
    (Every pass renders every shard's key: the last 64Ki answers are kept.)"""
    try:
        return _key_to_json(key)
    except TypeError:  # not hashable (a list of segments): not kept
        return _key_to_json.__wrapped__(key)


@functools.lru_cache(maxsize=1 << 16)
def _key_to_json(key: Key) -> str:
    try:
        return json.dumps([s.decode("utf-8") for s in key], ensure_ascii=False,
                          separators=(",", ":"))
    except UnicodeDecodeError:
        return json.dumps({"base64": key_to_base64(key)}, separators=(",", ":"))


def key_from_json(text: str) -> Key:
    """Inverse of :func:`key_to_json`; :class:`InvalidKey` on anything else."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidKey(f"not a key: {text!r}") from exc
    if isinstance(value, dict) and isinstance(value.get("base64"), list):
        return decode_key(value["base64"], KeyEncoding.BASE64)
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return decode_key(value, KeyEncoding.UTF8)
    raise InvalidKey(f"not a key: {text!r}")
