"""Model-based tests: the cell module and the real HTTP server against a reference model.

The reference model below is written independently of ``shard_operator.server.cell``
(a plain dict and a linear scan), straight from the rules in anoma-semantics.md.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from shard_operator.client import (
    ABSENT,
    Occupied,
    ReadResult,
    ReadTimeout,
    ReservingUnderWatermark,
    ShardClient,
    ShardUnavailable,
)
from shard_operator.server.cell import MISSING, Cell, ReadStatus, ReserveResult
from shard_operator.server.shard import ReadTimedOut, Shard
from shard_operator.server.state import ShardState

# -- the reference model ----------------------------------------------------------------

NOTHING = object()  # no initial value
WAITS = "waits"
RESERVED = "reserved"


class RefCell:
    """Slots as {height: "reserved" | ("value", v)}; a watermark; nothing clever."""

    def __init__(self, initial: Any = NOTHING) -> None:
        self.watermark = 0
        self.slots: dict[int, Any] = {}
        if initial is not NOTHING:
            self.slots[0] = ("value", initial)

    def reserve(self, h: int) -> str:
        if h <= self.watermark:
            return "reserving_write_under_write_watermark"
        if h in self.slots:
            return "occupied"
        self.slots[h] = RESERVED
        return "ok"

    def write(self, h: int, value: Any) -> bool:
        if self.slots.get(h) == RESERVED:
            self.slots[h] = ("value", value)
            return True
        return False

    def unreserve(self, h: int) -> bool:
        if self.slots.get(h) == RESERVED:
            del self.slots[h]
            return True
        return False

    def advance(self, h: int) -> int:
        self.watermark = max(self.watermark, h)
        return self.watermark

    def read(self, h: int) -> Any:
        """WAITS, ABSENT, or ReadResult(True, v)."""
        if h > self.watermark + 1:
            return WAITS
        below = [k for k in self.slots if k < h]
        if not below:
            return ABSENT
        slot = self.slots[max(below)]
        if slot == RESERVED:
            return WAITS
        return ReadResult(True, slot[1])


heights = st.integers(0, 15)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
initial_values = st.just(NOTHING) | json_values


def _outcome(cell_outcome) -> Any:
    if cell_outcome.status is ReadStatus.WAIT:
        return WAITS
    if cell_outcome.status is ReadStatus.ABSENT:
        return ABSENT
    return ReadResult(True, cell_outcome.value)


# -- the cell module against the model --------------------------------------------------


class CellMachine(RuleBasedStateMachine):
    @initialize(initial=initial_values)
    def start(self, initial: Any) -> None:
        self.model = RefCell(initial)
        self.cell = Cell(MISSING if initial is NOTHING else initial)

    @rule(h=heights)
    def reserve(self, h: int) -> None:
        expected = self.model.reserve(h)
        assert self.cell.reserve(h) is ReserveResult(expected)

    @rule(h=heights, value=json_values)
    def write(self, h: int, value: Any) -> None:
        assert self.cell.write(h, value) == self.model.write(h, value)

    @rule(h=heights)
    def unreserve(self, h: int) -> None:
        assert self.cell.unreserve(h) == self.model.unreserve(h)

    @rule(h=heights)
    def advance(self, h: int) -> None:
        self.cell.advance_watermark(h)
        assert self.cell.watermark == self.model.advance(h)

    @invariant()
    def reads_agree_everywhere(self) -> None:
        if not hasattr(self, "cell"):
            return
        for h in range(0, 13):
            assert _outcome(self.cell.read(h)) == self.model.read(h), h

    @invariant()
    def slots_agree(self) -> None:
        if not hasattr(self, "cell"):
            return
        mine = {h: RESERVED if s.reserved else ("value", s.value) for h, s in self.cell.slots()}
        assert mine == self.model.slots


def test_cell_module_matches_the_reference_model():
    run_state_machine_as_test(
        CellMachine, settings=settings(max_examples=150, stateful_step_count=40, deadline=None)
    )


# -- the shard service (in process) and the real HTTP server against the model ----------


class _ServiceMachine(RuleBasedStateMachine):
    """Rules shared by the in-process and the HTTP machines.

    Blocking reads run as tasks; after every change the reads the model says are now
    answerable must be answered with the model's answer, and the shard must report
    exactly as many waiting readers as the model has (it drops answered readers before
    it answers the change).
    """

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.pending: list[tuple[int, asyncio.Task[Any]]] = []
        self.started = False

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 30))  # hang guard

    # -- what subclasses provide

    async def do_reserve(self, h: int) -> str:
        raise NotImplementedError

    async def do_write(self, h: int, value: Any) -> bool:
        raise NotImplementedError

    async def do_unreserve(self, h: int) -> bool:
        raise NotImplementedError

    async def do_advance(self, h: int) -> int:
        raise NotImplementedError

    async def do_read(self, h: int, timeout_seconds: float | None) -> Any:
        """ABSENT / ReadResult, or WAITS when a zero timeout ran out."""
        raise NotImplementedError

    async def await_waiting(self, count: int) -> None:
        raise NotImplementedError

    def waiting(self) -> int:
        raise NotImplementedError

    def slots_and_watermark(self) -> tuple[dict[int, Any], int]:
        raise NotImplementedError

    # -- rules. Heights are often drawn relative to the watermark, or from the heights
    # reserved so far, to stay where the semantics are interesting.

    reserved = Bundle("reserved")  # heights reserved so far (some since written/unreserved)

    def near(self, delta: int) -> int:
        return max(0, self.model.watermark + delta)

    def _reserve(self, h: int) -> Any:
        expected = self.model.reserve(h)
        assert self.run(self.do_reserve(h)) == expected
        self.settle()
        return h if expected == "ok" else multiple()

    @rule(target=reserved, h=heights)
    def reserve(self, h: int) -> Any:
        return self._reserve(h)

    @rule(target=reserved, delta=st.integers(-1, 3))
    def reserve_near(self, delta: int) -> Any:
        return self._reserve(self.near(delta))

    def _write(self, h: int, value: Any) -> None:
        expected = self.model.write(h, value)
        assert self.run(self.do_write(h, value)) is expected
        self.settle()

    @rule(h=reserved, value=json_values)
    def write_reserved(self, h: int, value: Any) -> None:
        self._write(h, value)

    def _unreserve(self, h: int) -> None:
        expected = self.model.unreserve(h)
        assert self.run(self.do_unreserve(h)) is expected
        self.settle()

    @rule(h=reserved)
    def unreserve_reserved(self, h: int) -> None:
        self._unreserve(h)

    def _advance(self, h: int) -> None:
        expected = self.model.advance(h)
        assert self.run(self.do_advance(h)) == expected
        self.settle()

    @rule(h=heights)
    def advance(self, h: int) -> None:
        self._advance(h)

    @rule(delta=st.integers(0, 2))
    def advance_near(self, delta: int) -> None:
        self._advance(self.near(delta))

    @rule(h=reserved)
    def advance_past_reservation(self, h: int) -> None:
        self._advance(h)

    def _read_now(self, h: int) -> None:
        assert self.run(self.do_read(h, 0)) == self.model.read(h)

    @rule(h=heights)
    def read_now(self, h: int) -> None:
        self._read_now(h)

    @rule(delta=st.integers(-3, 2))
    def read_now_near(self, delta: int) -> None:
        self._read_now(self.near(delta))

    def _start_read(self, h: int) -> None:
        task = self.loop.create_task(self.do_read(h, None))
        if self.model.read(h) is WAITS:
            self.pending.append((h, task))
            self.run(self.await_waiting(len(self.pending)))
        else:
            assert self.run(task) == self.model.read(h)

    @precondition(lambda self: len(self.pending) < 4)
    @rule(h=heights)
    def start_blocking_read(self, h: int) -> None:
        self._start_read(h)

    @precondition(lambda self: len(self.pending) < 4)
    @rule(delta=st.integers(-2, 3))
    def start_blocking_read_near(self, delta: int) -> None:
        self._start_read(self.near(delta))

    @precondition(lambda self: self.pending)
    @rule(index=st.integers(0, 3))
    def retract_read(self, index: int) -> None:
        _, task = self.pending.pop(index % len(self.pending))
        task.cancel()
        self.run(asyncio.gather(task, return_exceptions=True))
        self.run(self.await_waiting(len(self.pending)))

    def settle(self) -> None:
        answerable = [(h, task) for h, task in self.pending if self.model.read(h) is not WAITS]
        self.pending = [(h, task) for h, task in self.pending if self.model.read(h) is WAITS]
        # exact, and checked first: the shard drops the readers a change answers before
        # it answers the change
        assert self.waiting() == len(self.pending)
        for h, task in answerable:
            assert self.run(task) == self.model.read(h), h

    @invariant()
    def state_agrees(self) -> None:
        if self.started:
            assert self.slots_and_watermark() == (self.model.slots, self.model.watermark)

    def teardown(self) -> None:
        try:
            for _, task in self.pending:
                task.cancel()
            if self.pending:
                self.loop.run_until_complete(
                    asyncio.gather(*(t for _, t in self.pending), return_exceptions=True)
                )
            self.close()
        finally:
            self.loop.close()

    def close(self) -> None:
        pass


class InProcessMachine(_ServiceMachine):
    """The :class:`Shard` service (waiting readers, no HTTP, no disk)."""

    @initialize(initial=initial_values)
    def start(self, initial: Any) -> None:
        self.model = RefCell(initial)
        self.key = (b"k",)
        cell_initial = MISSING if initial is NOTHING else initial
        self.shard = Shard(ShardState.initial("node", [(self.key, cell_initial)]))
        self.started = True

    async def do_reserve(self, h: int) -> str:
        return (await self.shard.reserve(self.key, h)).value

    async def do_write(self, h: int, value: Any) -> bool:
        return await self.shard.write(self.key, h, value)

    async def do_unreserve(self, h: int) -> bool:
        return await self.shard.unreserve(self.key, h)

    async def do_advance(self, h: int) -> int:
        return await self.shard.advance_watermark(self.key, h)

    async def do_read(self, h: int, timeout_seconds: float | None) -> Any:
        try:
            return _outcome(await self.shard.read(self.key, h, timeout_seconds))
        except ReadTimedOut:
            return WAITS

    async def await_waiting(self, count: int) -> None:
        await asyncio.sleep(0)  # let a new read task run up to its wait
        assert self.shard.waiting_readers() == count

    def waiting(self) -> int:
        return self.shard.waiting_readers()

    def slots_and_watermark(self) -> tuple[dict[int, Any], int]:
        cell = self.shard.cell(self.key)
        slots = {h: RESERVED if s.reserved else ("value", s.value) for h, s in cell.slots()}
        return slots, cell.watermark


def test_shard_service_matches_the_reference_model():
    run_state_machine_as_test(
        InProcessMachine,
        settings=settings(max_examples=250, stateful_step_count=50, deadline=None),
    )


class HttpMachine(_ServiceMachine):
    """A fresh ``shard-server`` process per example, through :class:`ShardClient`.

    Besides the shared rules, one SIGKILL + restart may happen per example: waiting
    reads then fail, and the state must come back exactly.
    """

    pool: ClassVar[Any] = None
    SERVICE = "shard-k"
    KEY: ClassVar[list[str]] = ["k"]

    @initialize(initial=initial_values)
    def start(self, initial: Any) -> None:
        self.model = RefCell(initial)
        self.restarts = 0
        kwargs = {} if initial is NOTHING else {"initial": initial}
        self.server = self.pool.start(self.KEY, **kwargs)
        self.client = ShardClient(lambda _service: self.server.address)
        self.started = True

    async def do_reserve(self, h: int) -> str:
        try:
            await self.client.reserve(self.SERVICE, self.KEY, h)
        except Occupied:
            return "occupied"
        except ReservingUnderWatermark:
            return "reserving_write_under_write_watermark"
        return "ok"

    async def do_write(self, h: int, value: Any) -> bool:
        return await self.client.write(self.SERVICE, self.KEY, h, value)

    async def do_unreserve(self, h: int) -> bool:
        return await self.client.unreserve(self.SERVICE, self.KEY, h)

    async def do_advance(self, h: int) -> int:
        return await self.client.advance_watermark(self.SERVICE, self.KEY, h)

    async def do_read(self, h: int, timeout_seconds: float | None) -> Any:
        try:
            return await self.client.read(self.SERVICE, self.KEY, h, timeout=timeout_seconds)
        except ReadTimeout:
            return WAITS

    async def await_waiting(self, count: int) -> None:
        await self.server.await_waiting_readers(count)

    def waiting(self) -> int:
        return self.server.waiting_readers()

    def slots_and_watermark(self) -> tuple[dict[int, Any], int]:
        cell = self.server.cell()
        slots = {
            s["height"]: RESERVED if s["state"] == "reserved" else ("value", s["value"])
            for s in cell["slots"]
        }
        return slots, cell["watermark"]

    @precondition(lambda self: self.restarts < 1)
    @rule()
    def kill_and_restart(self) -> None:
        self.restarts += 1
        self.server.kill()
        for _, task in self.pending:
            with pytest.raises(ShardUnavailable):
                self.run(task)
        self.pending.clear()
        self.server.start()

    def close(self) -> None:
        if self.started:
            self.loop.run_until_complete(self.client.close())
            self.server.kill()


@pytest.mark.timeout(180)
def test_http_server_matches_the_reference_model(servers):
    HttpMachine.pool = servers
    try:
        run_state_machine_as_test(
            HttpMachine,
            settings=settings(
                max_examples=8,
                stateful_step_count=30,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        HttpMachine.pool = None
