"""The semantics of one shard cell, as in Anoma's shard process. Pure: no IO, no asyncio.

A cell has slots by height (a non-negative integer) and a write watermark (starts at 0).
A slot is empty, reserved, or holds a value; the initial value (if any) sits at height 0.

- ``reserve(h)``: refused with ``UNDER_WATERMARK`` if ``h <= watermark``, with ``OCCUPIED`` if
  the slot at ``h`` is reserved or holds a value; otherwise the slot becomes reserved.
- ``read(h)``: ``WAIT`` if ``h > watermark + 1``; otherwise the highest slot strictly below
  ``h`` that is reserved or holds a value decides: none -> ``ABSENT``, reserved -> ``WAIT``,
  value -> ``OK``.
- ``write(h, v)``: applies only if the slot at ``h`` is reserved (even below the watermark).
- ``unreserve(h)``: reserved -> empty.
- ``advance_watermark(h)``: watermark = max(old, h).

Once a read can be answered its answer never changes (nothing can appear below a height
that is at most ``watermark + 1``), so waiting readers only need re-checking after a write,
an unreserve or an advance.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from ..missing import MISSING


class SlotState(enum.StrEnum):
    """What a non-empty slot holds."""

    RESERVED = "reserved"
    VALUE = "value"


@dataclass(frozen=True, slots=True)
class Slot:
    """A non-empty slot: reserved, or holding ``value``."""

    state: SlotState
    value: Any = None

    @property
    def reserved(self) -> bool:
        return self.state is SlotState.RESERVED


RESERVED: Final = Slot(SlotState.RESERVED)


def stored(value: Any) -> Slot:
    """A slot holding ``value``."""
    return Slot(SlotState.VALUE, value)


class ReserveResult(enum.StrEnum):
    """Outcome of :meth:`Cell.reserve`; the values are the wire error codes."""

    OK = "ok"
    OCCUPIED = "occupied"
    UNDER_WATERMARK = "reserving_write_under_write_watermark"


class ReadStatus(enum.StrEnum):
    OK = "ok"
    ABSENT = "absent"
    WAIT = "wait"


@dataclass(frozen=True, slots=True)
class ReadOutcome:
    """Outcome of :meth:`Cell.read`: ``value`` is meaningful only when ``status`` is OK."""

    status: ReadStatus
    value: Any = None

    @property
    def waiting(self) -> bool:
        return self.status is ReadStatus.WAIT


ABSENT: Final = ReadOutcome(ReadStatus.ABSENT)
WAIT: Final = ReadOutcome(ReadStatus.WAIT)


def _check_height(height: int) -> None:
    if type(height) is not int or height < 0:
        raise ValueError(f"height must be an integer >= 0, got {height!r}")


class Cell:
    """Slots by height and a write watermark for one key."""

    __slots__ = ("_heights", "_slots", "watermark")

    def __init__(self, initial_value: Any = MISSING) -> None:
        self.watermark: int = 0
        self._slots: dict[int, Slot] = {}
        self._heights: list[int] = []  # sorted heights of non-empty slots
        if initial_value is not MISSING:
            self._put(0, stored(initial_value))

    @classmethod
    def restore(cls, watermark: int, slots: Iterable[tuple[int, Slot]]) -> Cell:
        """A cell with the given watermark and non-empty slots (e.g. from a snapshot)."""
        _check_height(watermark)
        cell = cls()
        cell.watermark = watermark
        for height, slot in slots:
            _check_height(height)
            if height in cell._slots:
                raise ValueError(f"duplicate slot at height {height}")
            cell._put(height, slot)
        return cell

    # -- inspection -------------------------------------------------------------------

    def slot(self, height: int) -> Slot | None:
        """The slot at ``height``, or ``None`` when it is empty."""
        return self._slots.get(height)

    def slots(self) -> Iterator[tuple[int, Slot]]:
        """Non-empty slots in increasing height order."""
        for height in self._heights:
            yield height, self._slots[height]

    def value_count(self) -> int:
        """How many slots hold a value."""
        return sum(1 for slot in self._slots.values() if not slot.reserved)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Cell):
            return NotImplemented
        return self.watermark == other.watermark and self._slots == other._slots

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        slots = ", ".join(
            f"{h}: reserved" if s.reserved else f"{h}: {s.value!r}" for h, s in self.slots()
        )
        return f"Cell(watermark={self.watermark}, slots={{{slots}}})"

    # -- operations -------------------------------------------------------------------

    def reserve(self, height: int) -> ReserveResult:
        """Reserve the slot at ``height`` for a later write."""
        _check_height(height)
        if height <= self.watermark:
            return ReserveResult.UNDER_WATERMARK
        if height in self._slots:
            return ReserveResult.OCCUPIED
        self._put(height, RESERVED)
        return ReserveResult.OK

    def write(self, height: int, value: Any) -> bool:
        """Store ``value`` at ``height`` if that slot is reserved; return whether it applied."""
        _check_height(height)
        slot = self._slots.get(height)
        if slot is None or not slot.reserved:
            return False
        self._slots[height] = stored(value)
        return True

    def unreserve(self, height: int) -> bool:
        """Empty a reserved slot; return whether anything changed."""
        _check_height(height)
        slot = self._slots.get(height)
        if slot is None or not slot.reserved:
            return False
        del self._slots[height]
        index = bisect.bisect_left(self._heights, height)
        del self._heights[index]
        return True

    def advance_watermark(self, height: int) -> bool:
        """Raise the watermark to ``height`` if higher; return whether it moved."""
        _check_height(height)
        if height <= self.watermark:
            return False
        self.watermark = height
        return True

    def read(self, height: int) -> ReadOutcome:
        """What a read at ``height`` answers now (``WAIT`` if it must wait)."""
        _check_height(height)
        if height > self.watermark + 1:
            return WAIT
        index = bisect.bisect_left(self._heights, height)
        if index == 0:
            return ABSENT
        slot = self._slots[self._heights[index - 1]]
        if slot.reserved:
            return WAIT
        return ReadOutcome(ReadStatus.OK, slot.value)

    # -- internals --------------------------------------------------------------------

    def _put(self, height: int, slot: Slot) -> None:
        self._slots[height] = slot
        bisect.insort(self._heights, height)
