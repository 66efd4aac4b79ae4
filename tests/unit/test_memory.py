"""Memory: the controller's bounded fan-out, the process-wide settings and the opt-in
tracemalloc reports."""

from __future__ import annotations

import asyncio
import atexit
import signal
import tracemalloc
from pathlib import Path

from shard_operator import memory, memprofile
from shard_operator.cache import Cache
from shard_operator.controller import Controller


async def test_bounded_keeps_order_and_the_shared_limit() -> None:
    controller = Controller(None, Cache(), concurrency=3)  # type: ignore[arg-type]
    running, most, started = 0, 0, []

    async def call(i: int) -> int:
        nonlocal running, most
        started.append(i)
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.001 * (i % 4))
        running -= 1
        return i * 10

    # Two fan-outs at once share the controller's limit of 3.
    first, second = await asyncio.gather(
        controller.writes.bounded(lambda i=i: call(i) for i in range(40)),
        controller.writes.bounded([lambda i=i: call(100 + i) for i in range(5)]))
    assert first == [i * 10 for i in range(40)]
    assert second == [(100 + i) * 10 for i in range(5)]
    assert most == 3
    assert [i for i in started if i < 100] == list(range(40))  # started in order
    assert await controller.writes.bounded([]) == []


async def test_bounded_consumes_calls_only_as_slots_free_up() -> None:
    controller = Controller(None, Cache(), concurrency=2)  # type: ignore[arg-type]
    made = 0
    gate = asyncio.Event()

    def calls():
        nonlocal made
        for i in range(10):
            made += 1
            yield lambda i=i: gate.wait()

    task = asyncio.create_task(controller.writes.bounded(calls()))
    await asyncio.sleep(0.01)
    assert made == 2  # not one waiting task (and closure) per call up front
    gate.set()
    assert len(await task) == 10


async def test_bounded_raises_the_first_error() -> None:
    controller = Controller(None, Cache(), concurrency=2)  # type: ignore[arg-type]

    async def fail() -> None:
        raise ValueError("boom")

    try:
        await controller.writes.bounded([fail])
    except ValueError as error:
        assert str(error) == "boom"
    else:
        raise AssertionError("no error")


def test_tls_buffer_and_malloc_settings() -> None:
    before = asyncio.sslproto.SSLProtocol.max_size
    try:
        memory.shrink_tls_buffers(32 * 1024)
        assert asyncio.sslproto.SSLProtocol.max_size == 32 * 1024
    finally:
        asyncio.sslproto.SSLProtocol.max_size = before
    if memprofile.malloc_info():  # glibc
        assert memory.pin_malloc_thresholds() is True


def test_tracemalloc_report_is_off_unless_asked_for(tmp_path: Path) -> None:
    assert memprofile.install_from_env({}) is None
    assert not tracemalloc.is_tracing()


def test_tracemalloc_report_on_sigusr1(tmp_path: Path) -> None:
    target = tmp_path / "report.txt"
    handler = signal.getsignal(signal.SIGUSR1)
    try:
        assert memprofile.install_from_env(
            {memprofile.ENV_PATH: str(target), memprofile.ENV_FRAMES: "4"}) == target
        assert tracemalloc.is_tracing()
        kept = [bytearray(4096) for _ in range(100)]
        signal.raise_signal(signal.SIGUSR1)
        text = target.read_text()
        assert "SIGUSR1" in text and "rss:" in text and "tracemalloc: current" in text
        [snapshot] = tmp_path.glob("report.txt.*.snapshot")
        assert "test_memory.py" in memprofile.top(tracemalloc.Snapshot.load(str(snapshot)))
        del kept
    finally:
        atexit.unregister(memprofile.dump)
        tracemalloc.stop()
        signal.signal(signal.SIGUSR1, handler)


async def test_event_only_memories_keep_nothing_per_object():
    from shard_operator.memory import EventOnlyMemories

    memories = EventOnlyMemories()
    body = {"metadata": {"uid": "u-1", "name": "n", "namespace": "ns"}}
    first = await memories.recall(body, noticed_by_listing=True)
    second = await memories.recall(body)
    assert first is not second  # a fresh memory per event
    assert list(memories.iter_all_memories()) == []
    await memories.forget(body)  # nothing to forget: no error


def test_peak_keeper_keeps_the_highest_snapshot_by_steps(tmp_path: Path) -> None:
    tracemalloc.start(2)
    try:
        keeper = memprofile.PeakKeeper(tmp_path / "r.txt", step=1 * 2**20)
        assert not keeper.check()  # less than a step traced since the start
        base = [bytearray(4096) for _ in range(300)]  # ~1.2 MB
        assert keeper.check()
        assert not keeper.check()  # no new high by a step
        transient = [bytearray(4096) for _ in range(600)]  # ~2.4 MB above the kept level
        assert keeper.check()
        kept = keeper.kept
        del transient
        assert not keeper.check() and keeper.kept == kept  # a fall keeps the high's snapshot
        peak = tracemalloc.Snapshot.load(str(tmp_path / "r.txt.peak.snapshot"))
        assert "test_memory.py" in memprofile.top(peak)
        assert not list(tmp_path.glob("*.partial"))
        del base
    finally:
        tracemalloc.stop()
