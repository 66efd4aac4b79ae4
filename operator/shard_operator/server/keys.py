"""Keys: a key is a tuple of byte segments; on the wire each segment is a string.

With the ``utf8`` encoding a segment is text, encoded as UTF-8; with ``base64`` it is the
standard, padded base64 (RFC 4648 section 4) of arbitrary bytes, in canonical form. Two
keys are the same key exactly when their byte segments are equal, so ``["a", "b"]`` and
``["ab"]`` are different keys.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Sequence

Key = tuple[bytes, ...]


class KeyEncoding(enum.StrEnum):
    UTF8 = "utf8"
    BASE64 = "base64"


class KeyFormatError(ValueError):
    """A key segment that is not valid in the given encoding."""


def decode_segment(segment: str, encoding: KeyEncoding) -> bytes:
    """The bytes of one wire segment."""
    if encoding is KeyEncoding.UTF8:
        try:
            return segment.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise KeyFormatError("is not valid Unicode text (lone surrogate)") from exc
    try:
        raw = base64.b64decode(segment.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise KeyFormatError("is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != segment:
        raise KeyFormatError("is not canonical padded base64")
    return raw


def decode_key(segments: Sequence[str], encoding: KeyEncoding) -> Key:
    """The key named by wire ``segments``; :class:`KeyFormatError` names the bad segment."""
    out = []
    for index, segment in enumerate(segments):
        try:
            out.append(decode_segment(segment, encoding))
        except KeyFormatError as exc:
            raise KeyFormatError(f"key segment {index} {exc}") from None
    return tuple(out)


def encode_key(key: Key, encoding: KeyEncoding) -> list[str]:
    """Wire segments for ``key``; bytes that are not UTF-8 are shown with ``\\x`` escapes."""
    if encoding is KeyEncoding.UTF8:
        return [segment.decode("utf-8", errors="backslashreplace") for segment in key]
    return [base64.b64encode(segment).decode("ascii") for segment in key]


def key_to_base64(key: Key) -> list[str]:
    """Encoding-independent form used in the state file."""
    return encode_key(key, KeyEncoding.BASE64)
