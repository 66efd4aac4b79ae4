"""Client library for the routing side (Ordering): the shard API client and its errors."""

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
from .shard_api import ABSENT, ReadResult, Resolver, ShardClient

__all__ = [
    "ABSENT",
    "BadRequest",
    "Occupied",
    "PayloadTooLarge",
    "ReadResult",
    "ReadTimeout",
    "ReservingUnderWatermark",
    "Resolver",
    "ShardClient",
    "ShardError",
    "ShardProtocolError",
    "ShardUnavailable",
    "UnknownKey",
]
