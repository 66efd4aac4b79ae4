"""``MISSING``: "no value", as opposed to the JSON value null.

One sentinel for every layer: ``start_shard``'s and the schema's initial value, the
Shard body the operator renders, and the shard server's cell. ``None`` is always a
value (JSON ``null``, as ``nil`` is in the original); ``MISSING`` is its absence.
Standard library only: the shard server imports it without kopf or the Kubernetes
client.
"""

from __future__ import annotations

import enum
from typing import Final


class Missing(enum.Enum):
    """The type of :data:`MISSING` (an enum member, so that type checkers narrow
    ``value is MISSING``)."""

    MISSING = "missing"

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = Missing.MISSING
"""No value. ``None`` is a value (JSON ``null``)."""
