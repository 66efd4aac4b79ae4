"""Opt-in memory diagnostics for the operator process (off unless asked for).

``SHARD_OPERATOR_TRACEMALLOC=/path/report.txt shard-operator run ...`` starts
``tracemalloc`` before the operator imports kopf and appends a report to that file on
``SIGUSR1`` and at exit: RSS and peak RSS (``/proc/self/status``), tracemalloc's
current and peak totals, glibc's heap figures (``mallinfo2``: in use vs free), live
asyncio tasks grouped by coroutine, the most numerous object types, and the top
allocations grouped by traceback. ``SHARD_OPERATOR_TRACEMALLOC_FRAMES`` sets the
traceback depth (default 8). ``SHARD_OPERATOR_TRACEMALLOC_PEAK_MB=STEP`` also keeps
``PATH.peak.snapshot``: a thread polls the traced total and, each time it reaches a new
high at least STEP MB above the last kept one, replaces that snapshot (a transient peak,
which neither SIGUSR1 nor the exit report catches). tracemalloc itself costs memory and
time: use it to see *what* holds memory, never to measure RSS.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import ctypes
import ctypes.util
import gc
import os
import signal
import threading
import time
import tracemalloc
from pathlib import Path

ENV_PATH = "SHARD_OPERATOR_TRACEMALLOC"
ENV_FRAMES = "SHARD_OPERATOR_TRACEMALLOC_FRAMES"
ENV_PEAK_STEP = "SHARD_OPERATOR_TRACEMALLOC_PEAK_MB"
PEAK_POLL_SECONDS = 0.25


def install_from_env(environ: dict[str, str] | os._Environ[str] | None = None) -> Path | None:
    """Start tracing if ``SHARD_OPERATOR_TRACEMALLOC`` is set; returns the report path."""
    environ = os.environ if environ is None else environ
    target = environ.get(ENV_PATH)
    if not target:
        return None
    path = Path(target)
    tracemalloc.start(int(environ.get(ENV_FRAMES, "8")))
    signal.signal(signal.SIGUSR1, lambda *_: dump(path, "SIGUSR1"))
    atexit.register(dump, path, "exit")
    if environ.get(ENV_PEAK_STEP):
        PeakKeeper(path, float(environ[ENV_PEAK_STEP]) * 2**20).start()
    return path


class PeakKeeper(threading.Thread):
    """Keeps a snapshot of the highest traced total seen, in steps of ``step`` bytes."""

    def __init__(self, path: Path, step: float, poll: float = PEAK_POLL_SECONDS) -> None:
        super().__init__(name="tracemalloc-peak", daemon=True)
        self.path, self.step, self.poll = path.with_name(f"{path.name}.peak.snapshot"), step, poll
        self.kept = 0.0
        self.stopped = threading.Event()

    def check(self) -> bool:
        """Replace the snapshot if the traced total is a new high by ``step``."""
        current, _ = tracemalloc.get_traced_memory()
        if current < self.kept + self.step:
            return False
        snapshot = tracemalloc.take_snapshot()
        self.kept = current
        partial = self.path.with_suffix(".partial")
        snapshot.dump(str(partial))
        partial.replace(self.path)
        return True

    def run(self) -> None:
        while not self.stopped.wait(self.poll) and tracemalloc.is_tracing():
            self.check()


def proc_status() -> dict[str, float]:
    """VmRSS and VmHWM in MB (empty where /proc is not there)."""
    out: dict[str, float] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, amount = line.split(":", 1)
                    out[key] = int(amount.split()[0]) / 1024
    except OSError:
        pass
    return out


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def malloc_info() -> dict[str, int]:
    """glibc's heap: ``arena`` (bytes from sbrk), ``uordblks`` (in use), ``fordblks``
    (free but kept), ``hblkhd`` (mmapped); empty if not glibc >= 2.33."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallinfo2 = libc.mallinfo2
    except (OSError, AttributeError):
        return {}
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return {name: getattr(info, name) for name in ("arena", "uordblks", "fordblks", "hblkhd")}


def tasks_by_coroutine() -> collections.Counter[str]:
    """Live asyncio tasks of the running loop (if any), by coroutine name."""
    loop = asyncio._get_running_loop()
    if loop is None:
        return collections.Counter()
    return collections.Counter(
        getattr(task.get_coro(), "__qualname__", repr(task.get_coro()))
        for task in asyncio.all_tasks(loop))


def report() -> str:
    """The cheap part: RSS, totals, tasks and object counts (no snapshot statistics)."""
    lines = [f"rss: {proc_status()}"]
    if tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        lines.append(f"tracemalloc: current {current / 2**20:.1f} MB, "
                     f"peak {peak / 2**20:.1f} MB")
    lines.append(f"malloc: { {k: round(v / 2**20, 1) for k, v in malloc_info().items()} } MB")
    tasks = tasks_by_coroutine()
    lines.append(f"asyncio tasks: {sum(tasks.values())}")
    lines += [f"  {count:7d} {name}" for name, count in tasks.most_common(10)]
    types = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    lines.append(f"gc objects: {sum(types.values())}")
    lines += [f"  {count:7d} {name}" for name, count in types.most_common(15)]
    return "\n".join(lines)


def top(snapshot: tracemalloc.Snapshot, limit: int = 25) -> str:
    """The largest allocations of a snapshot, by line and by traceback."""
    lines = ["top by line:"]
    for stat in snapshot.statistics("lineno")[:limit]:
        lines.append(f"  {stat.size / 1024:9.1f} KiB {stat.count:8d} blocks  {stat.traceback[0]}")
    lines.append("top by traceback:")
    for stat in snapshot.statistics("traceback")[:limit]:
        lines.append(f"  {stat.size / 1024:9.1f} KiB {stat.count:8d} blocks")
        lines += [f"      {frame}" for frame in reversed(stat.traceback)]
    return "\n".join(lines)


_dumps = 0


def dump(path: Path, why: str = "") -> None:
    """Append the cheap report to ``path`` and write the snapshot beside it
    (``PATH.N.snapshot``; grouping a large one takes minutes, so it is left to
    ``python -m shard_operator.memprofile PATH.N.snapshot``)."""
    global _dumps
    _dumps += 1
    text = report()
    if tracemalloc.is_tracing():
        snapshot_path = path.with_name(f"{path.name}.{_dumps}.snapshot")
        tracemalloc.take_snapshot().dump(str(snapshot_path))
        text += f"\nsnapshot: {snapshot_path}"
    with open(path, "a", encoding="utf-8") as out:
        out.write(f"=== {time.strftime('%Y-%m-%dT%H:%M:%S')} pid {os.getpid()} {why}\n"
                  f"{text}\n\n")


if __name__ == "__main__":
    import sys

    for name in sys.argv[1:]:
        print(f"=== {name}")
        print(top(tracemalloc.Snapshot.load(name), int(os.environ.get("TOP", "25"))))
