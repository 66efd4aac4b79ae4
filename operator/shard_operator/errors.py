"""Errors of start_shard, the key map and lookups, with the CLI's exit codes."""

from __future__ import annotations


class ShardOperatorError(Exception):
    exit_code = 1


class InvalidInput(ShardOperatorError):
    """A node id, key or value that cannot be used."""

    exit_code = 2


class AlreadyStarted(ShardOperatorError):
    """A shard for this key exists; its state and initial value are untouched."""

    exit_code = 3

    def __init__(self, shard: str, service: str) -> None:
        super().__init__(f"already started: shard {shard} ({service}) holds this key; "
                         "its value is unchanged")
        self.shard, self.service = shard, service


class NoShardSet(ShardOperatorError):
    exit_code = 4

    def __init__(self, node_id: str, namespace: str) -> None:
        super().__init__(f"no ShardSet for node id {node_id!r} in namespace {namespace!r}")
        self.node_id, self.namespace = node_id, namespace


class KeyMapUpdateFailed(ShardOperatorError):
    """The shard could not be registered; it was stopped again (never runs unlisted)."""

    exit_code = 5

    def __init__(self, reason: str) -> None:
        super().__init__(f"key map update failed: {reason}")
        self.reason = reason


class KeyNotFound(ShardOperatorError):
    exit_code = 6


class KeyMapUnavailable(ShardOperatorError):
    exit_code = 7


class HashCollision(ShardOperatorError):
    """Two different keys with the same shard name: reported, never merged."""

    exit_code = 8


class StartTimeout(ShardOperatorError):
    exit_code = 9
