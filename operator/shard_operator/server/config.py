"""Start-up configuration of a shard server, read from the environment.

=======================  ==========================================================
``SHARD_NODE_ID``        required; the node id of the ShardSet this shard belongs to
``SHARD_KEY``            required; JSON list of segment strings (non-empty, no empty
                         segment), e.g. ``["a", "b"]``
``SHARD_KEY_ENCODING``   ``utf8`` (default): segments are text; ``base64``: segments are
                         canonical padded base64 of arbitrary bytes. Requests name keys
                         in the same encoding.
``SHARD_INITIAL_VALUE``  optional JSON; when unset there is no value at height 0 (JSON
                         ``null`` *is* a value). Ignored when state is restored.
``SHARD_DATA_DIR``       where the state is persisted (default ``./shard-data``; the
                         image sets ``/data``)
=======================  ==========================================================
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..keycodec import InvalidKey, Key, KeyEncoding, decode_key
from ..missing import MISSING
from .values import JSONValueError, loads_strict

DEFAULT_DATA_DIR = "./shard-data"


class ConfigError(ValueError):
    """The environment does not describe a valid shard."""


@dataclass(frozen=True)
class ShardConfig:
    node_id: str
    key: Key
    key_segments: tuple[str, ...]
    key_encoding: KeyEncoding
    initial_value: Any  # MISSING when unset
    data_dir: Path
    data_dir_defaulted: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ShardConfig:
        node_id = env.get("SHARD_NODE_ID", "")
        if not node_id:
            raise ConfigError("SHARD_NODE_ID is not set (the node id of this shard's ShardSet)")

        raw_encoding = env.get("SHARD_KEY_ENCODING", "") or KeyEncoding.UTF8.value
        try:
            encoding = KeyEncoding(raw_encoding)
        except ValueError:
            raise ConfigError(
                f"SHARD_KEY_ENCODING must be 'utf8' or 'base64', not {raw_encoding!r}"
            ) from None

        raw_key = env.get("SHARD_KEY")
        if raw_key is None:
            raise ConfigError("SHARD_KEY is not set (a JSON list of key segments)")
        try:
            segments = json.loads(raw_key)
        except ValueError as exc:
            raise ConfigError(f"SHARD_KEY is not valid JSON: {exc}") from None
        if not isinstance(segments, list) or not all(isinstance(s, str) for s in segments):
            raise ConfigError(f"SHARD_KEY must be a JSON list of strings, got {raw_key!r}")
        if not segments:
            raise ConfigError("SHARD_KEY must have at least one segment")
        try:
            key = decode_key(segments, encoding)
        except InvalidKey as exc:
            raise ConfigError(f"SHARD_KEY: {exc} (SHARD_KEY_ENCODING={encoding.value})") from None
        for index, segment in enumerate(key):
            if not segment:
                raise ConfigError(f"SHARD_KEY segment {index} is empty")

        initial: Any = MISSING
        if "SHARD_INITIAL_VALUE" in env:
            try:
                initial = loads_strict(env["SHARD_INITIAL_VALUE"])
            except JSONValueError as exc:
                raise ConfigError(f"SHARD_INITIAL_VALUE is not valid JSON: {exc}") from None

        data_dir = env.get("SHARD_DATA_DIR", "")
        return cls(
            node_id=node_id,
            key=key,
            key_segments=tuple(segments),
            key_encoding=encoding,
            initial_value=initial,
            data_dir=Path(data_dir or DEFAULT_DATA_DIR),
            data_dir_defaulted=not data_dir,
        )
