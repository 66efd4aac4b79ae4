"""The shard service: cells + blocking readers + durability, independent of HTTP.

Every operation answers only once the state it saw is durable: a change waits for the
commit that includes it, and an answer that *observed* a change (a read, a refused
reserve) waits for that change's commit too, so no client ever sees state that a crash
could take back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..keycodec import Key, KeyEncoding
from ..missing import MISSING
from .cell import Cell, ReadOutcome, ReserveResult
from .journal import encode_record
from .state import ChangeOp, ShardState, change_record
from .store import CommitHook, GroupCommitter, PersistenceFailed, StateStore

log = logging.getLogger(__name__)


class UnknownKey(LookupError):
    """This shard does not hold the key."""


class ReadTimedOut(TimeoutError):
    """A blocking read's timeout ran out before it could be answered."""


class ShuttingDown(RuntimeError):
    """The server is stopping; a waiting read is answered with this."""


@dataclass(eq=False, slots=True)
class _Waiter:
    height: int
    future: asyncio.Future[ReadOutcome]


class Shard:
    """The cells a shard server holds, with waiting readers and (optionally) a store."""

    def __init__(
        self,
        state: ShardState,
        encoding: KeyEncoding = KeyEncoding.UTF8,
        *,
        store: StateStore | None = None,
        on_commit: CommitHook | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.state = state
        self.encoding = encoding
        self.closing = False
        self._on_failure = on_failure
        self._waiters: dict[Key, set[_Waiter]] = {key: set() for key in state.cells}
        self._committer = (
            GroupCommitter(store, self._snapshot, state.version, on_commit)
            if store is not None
            else None
        )

    # -- status ------------------------------------------------------------------------

    @property
    def failure(self) -> BaseException | None:
        """Why persistence failed, if it did (the server must then stop)."""
        return self._committer.failure if self._committer is not None else None

    def waiting_readers(self) -> int:
        return sum(len(waiters) for waiters in self._waiters.values())

    def cell(self, key: Key) -> Cell:
        try:
            return self.state.cells[key]
        except KeyError:
            raise UnknownKey(key) from None

    # -- operations ----------------------------------------------------------------------

    async def reserve(self, key: Key, height: int) -> ReserveResult:
        result = self.cell(key).reserve(height)
        if result is ReserveResult.OK:
            self._changed(key, ChangeOp.RESERVE, height)
        await self._settle()
        return result

    async def write(self, key: Key, height: int, value: Any) -> bool:
        applied = self.cell(key).write(height, value)
        if applied:
            self._changed(key, ChangeOp.WRITE, height, value)
        await self._settle()
        return applied

    async def unreserve(self, key: Key, height: int) -> bool:
        changed = self.cell(key).unreserve(height)
        if changed:
            self._changed(key, ChangeOp.UNRESERVE, height)
        await self._settle()
        return changed

    async def advance_watermark(self, key: Key, height: int) -> int:
        cell = self.cell(key)
        if cell.advance_watermark(height):
            self._changed(key, ChangeOp.ADVANCE, height)
        await self._settle()
        return cell.watermark

    async def read(
        self, key: Key, height: int, timeout_seconds: float | None = None
    ) -> ReadOutcome:
        """Answer a read, waiting while it must (at most ``timeout_seconds``; 0 = no wait)."""
        cell = self.cell(key)
        outcome = cell.read(height)
        if outcome.waiting:
            if timeout_seconds is not None and timeout_seconds <= 0:
                raise ReadTimedOut()
            if self.closing:
                raise ShuttingDown()
            waiter = _Waiter(height, asyncio.get_running_loop().create_future())
            waiters = self._waiters[key]
            waiters.add(waiter)
            try:
                async with asyncio.timeout(timeout_seconds):
                    outcome = await waiter.future
            except TimeoutError:
                raise ReadTimedOut() from None
            finally:
                # also reached when the client disconnects (the handler is cancelled):
                # the read is retracted
                waiters.discard(waiter)
        await self._settle()
        return outcome

    async def backup(self, key: Key | None = None) -> int:
        """Make the whole state durable; return how many values the key (or all keys) hold."""
        count = self.cell(key).value_count() if key is not None else self.state.value_count()
        await self._settle()
        return count

    async def describe(self) -> dict[str, Any]:
        await self._settle()
        waiting = {key: len(waiters) for key, waiters in self._waiters.items()}
        return self.state.describe(self.encoding, waiting)

    # -- lifecycle -----------------------------------------------------------------------

    def begin_shutdown(self) -> None:
        """Stop accepting new waits and answer every waiting reader with ShuttingDown."""
        self.closing = True
        for waiters in self._waiters.values():
            for waiter in list(waiters):
                if not waiter.future.done():
                    waiter.future.set_exception(ShuttingDown())
            waiters.clear()

    async def close(self) -> None:
        """Wait for the commit in progress, then write a checkpoint (a clean stop leaves
        no journal to replay)."""
        if self._committer is not None:
            await self._committer.close(checkpoint=True)

    # -- internals -----------------------------------------------------------------------

    def _changed(self, key: Key, op: ChangeOp, height: int, value: Any = MISSING) -> None:
        """Count and journal an accepted change, and answer the readers it unblocks."""
        self.state.version += 1
        if self._committer is not None:
            record = change_record(self.state.version, op, key, height, value)
            self._committer.record(self.state.version, encode_record(record))
        cell = self.state.cells[key]
        waiters = self._waiters[key]
        for waiter in list(waiters):
            outcome = cell.read(waiter.height)
            if not outcome.waiting:
                waiters.discard(waiter)
                if not waiter.future.done():
                    waiter.future.set_result(outcome)

    async def _settle(self) -> None:
        """Return once everything this request saw is durable."""
        if self._committer is None:
            return
        try:
            await self._committer.wait_durable(self.state.version)
        except PersistenceFailed as exc:
            if self._on_failure is not None:
                self._on_failure(exc)
            raise

    def _snapshot(self) -> tuple[int, Any]:
        return self.state.version, self.state.to_payload()
