"""Storage keys: validation, canonical bytes, and the names derived from them.

A key is a list of segments. Its identity is the tuple of segment *bytes*: a utf8
segment is its UTF-8 encoding, a base64 segment is what it decodes to (the codec is
:mod:`.keycodec`, shared with the shard server). The Shard name hashes a
length-prefixed encoding, so ``["a","b"]`` and ``["ab"]`` differ.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Sequence

from .constants import KEY_MAP_PREFIX, SHARD_PORT
from .keycodec import (
    InvalidKey,
    Key,
    KeyEncoding,
    KeySegments,
    decode_segment,
    encode_segment,
    key_from_json,
    key_to_json,
)

__all__ = ["InvalidKey", "Key", "KeyEncoding", "KeySegments", "decode_segments",
           "key_from_json", "key_map_name", "key_to_json", "service_domain", "shard_address",
           "shard_name", "to_key", "validate_node_id"]

NODE_ID_PATTERN = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
NODE_ID_MAX = 40
MAX_SEGMENTS = 8
MAX_SEGMENT_CHARS = 128
HASH_CHARS = 16  # base32 of 80 bits
FORBIDDEN_IN_TEXT = ("\ufffd", "\x1f")


def validate_node_id(node_id: str) -> str:
    if not isinstance(node_id, str) or not node_id:
        raise InvalidKey("node id must be a non-empty string")
    if len(node_id) > NODE_ID_MAX:
        raise InvalidKey(f"node id {node_id!r} is longer than {NODE_ID_MAX} characters")
    if not NODE_ID_PATTERN.match(node_id):
        raise InvalidKey(
            f"node id {node_id!r} must be a lowercase DNS label that starts with a letter "
            "(a-z, 0-9 and '-', not ending in '-')")
    return node_id


def decode_segments(segments: Sequence[str], encoding: str = "utf8") -> Key:
    """Segments as written in a spec (text or base64) → canonical bytes."""
    if encoding not in ("utf8", "base64"):
        raise InvalidKey(f"unknown key encoding {encoding!r}; use utf8 or base64")
    if not isinstance(segments, (list, tuple)) or not segments:
        raise InvalidKey("a key is a non-empty list of segments")
    if len(segments) > MAX_SEGMENTS:
        raise InvalidKey(f"a key has at most {MAX_SEGMENTS} segments, not {len(segments)}")
    out = []
    for index, segment in enumerate(segments):
        if not isinstance(segment, str) or not segment:
            raise InvalidKey(f"key segment {index} must be a non-empty string")
        if len(segment) > MAX_SEGMENT_CHARS:
            raise InvalidKey(f"key segment {index} is longer than {MAX_SEGMENT_CHARS} characters")
        if encoding == KeyEncoding.UTF8 and any(ch in segment for ch in FORBIDDEN_IN_TEXT):
            raise InvalidKey(f"key segment {index} holds U+FFFD or U+001F; use base64")
        try:
            out.append(decode_segment(segment, encoding))
        except InvalidKey as error:
            raise InvalidKey(f"key segment {index} {error}") from None
    return tuple(out)


def to_key(segments: KeySegments) -> tuple[Key, list[str], str]:
    """A key given as text and/or bytes → (canonical bytes, spec segments, encoding).

    All-text keys keep the utf8 encoding; any bytes segment makes the whole key base64.
    """
    if not segments:
        raise InvalidKey("a key is a non-empty list of segments")
    for index, segment in enumerate(segments):
        if not isinstance(segment, (str, bytes, bytearray)):
            raise InvalidKey(f"key segment {index} must be a string or bytes, "
                             f"not {type(segment).__name__}")
    texts = [s for s in segments if isinstance(s, str)]
    if len(texts) == len(segments):
        return decode_segments(texts, "utf8"), texts, "utf8"
    raw = [s.encode("utf-8") if isinstance(s, str) else bytes(s) for s in segments]
    spec = [encode_segment(s) for s in raw]
    return decode_segments(spec, "base64"), spec, "base64"


def key_digest(key: Key) -> str:
    """A DNS-safe, collision-resistant digest of a key (16 base32 characters). (Every
    pass names every shard: the last 64Ki answers are kept.)"""
    try:
        return _key_digest(key)
    except TypeError:  # not hashable (a list of segments): not kept
        return _key_digest.__wrapped__(key)


@functools.lru_cache(maxsize=1 << 16)
def _key_digest(key: Key) -> str:
    hasher = hashlib.sha256()
    hasher.update(len(key).to_bytes(4, "big"))
    for segment in key:
        hasher.update(len(segment).to_bytes(4, "big"))
        hasher.update(segment)
    return base64.b32encode(hasher.digest()[:10]).decode("ascii").lower()


def shard_name(node_id: str, key: Key) -> str:
    """Name of the Shard, Pod and Service of ``key``: ``<nodeId>-<digest>``."""
    return f"{node_id}-{key_digest(key)}"


def key_map_name(node_id: str) -> str:
    """Name of the node's key map ConfigMap."""
    return f"{KEY_MAP_PREFIX}{node_id}"


def service_domain(namespace: str) -> str:
    """The DNS domain of the Services of ``namespace`` (the key map's ``serviceDomain``)."""
    return f"{namespace}.svc"


def shard_address(name: str, namespace: str | None = None, *, domain: str | None = None,
                  port: int = SHARD_PORT) -> str:
    """A shard's address, ``<name>.<namespace>.svc:<port>``: the one builder used by the
    key map, the Shard's status and ``start_shard``. Give ``namespace``, or the
    ``domain`` a key map records."""
    if domain is None:
        if namespace is None:
            raise ValueError("shard_address needs a namespace or a domain")
        domain = service_domain(namespace)
    return f"{name}.{domain}:{port}"
