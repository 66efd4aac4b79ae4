"""A trace of each reconcile pass, for finding where a converge spends its time.

With ``SHARD_OPERATOR_TRACE=1`` in the environment, every pass logs one INFO line on
``shard_operator.trace``: the seconds of each phase (the steps of :mod:`.steps`), the
writes sent per kind and verb, the queue wait (from the first event that asked for the
pass to its start) and the pause applied after it. Off (the default), ``phase`` hands
back one shared no-op and ``wrote`` returns at once: nothing is timed or stored.

The current pass is found through a context variable, so the writes of the tasks a
pass starts (``Writes.bounded``) are counted in it.
"""

from __future__ import annotations

import contextvars
import logging
import os
import time
from types import TracebackType

ENABLED = os.environ.get("SHARD_OPERATOR_TRACE", "") == "1"
log = logging.getLogger("shard_operator.trace")


class _Phase:
    __slots__ = ("name", "started", "trace")

    def __init__(self, trace: PassTrace, name: str) -> None:
        self.trace, self.name, self.started = trace, name, 0.0

    def __enter__(self) -> None:
        self.started = time.monotonic()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        phases = self.trace.phases
        phases[self.name] = phases.get(self.name, 0.0) + time.monotonic() - self.started


class _NoPhase:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None


NO_PHASE = _NoPhase()


class PassTrace:
    """What one pass did, in order; logged by :meth:`finish`."""

    def __init__(self, node: str, queue_wait: float | None) -> None:
        self.node = node
        self.queue_wait = queue_wait
        self.started = time.monotonic()
        self.cpu = time.process_time()
        self.phases: dict[str, float] = {}
        self.writes: dict[str, int] = {}
        self.notes: dict[str, float | int] = {}

    def finish(self, pause: float) -> None:
        elapsed = time.monotonic() - self.started
        phases = " ".join(f"{name}={seconds:.3f}" for name, seconds in self.phases.items())
        writes = " ".join(f"{what}={count}" for what, count in sorted(self.writes.items()))
        notes = " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in self.notes.items())
        wait = "-" if self.queue_wait is None else f"{self.queue_wait:.3f}"
        log.info("pass %s: %.3f s (cpu %.3f s) queue_wait=%s pause=%.3f | %s | writes %s%s",
                 self.node, elapsed, time.process_time() - self.cpu, wait, pause, phases,
                 writes or "none", f" | {notes}" if notes else "")


_current: contextvars.ContextVar[PassTrace | None] = contextvars.ContextVar(
    "shard_operator_pass_trace", default=None)


def begin(node: str, queue_wait: float | None) -> PassTrace | None:
    """Start tracing a pass (None when tracing is off)."""
    if not ENABLED:
        return None
    trace = PassTrace(node, queue_wait)
    _current.set(trace)
    return trace


def phase(name: str) -> _Phase | _NoPhase:
    """``with pass_trace.phase("workloads"): ...`` adds its seconds to the pass's trace."""
    if not ENABLED:
        return NO_PHASE
    trace = _current.get()
    return NO_PHASE if trace is None else _Phase(trace, name)


def wrote(kind: str, verb: str) -> None:
    """Count one write in the current pass's trace."""
    if not ENABLED:
        return
    trace = _current.get()
    if trace is not None:
        what = f"{kind}.{verb}"
        trace.writes[what] = trace.writes.get(what, 0) + 1


def note(name: str, value: float | int) -> None:
    """Record one more figure of the current pass (e.g. key map slices written)."""
    if not ENABLED:
        return
    trace = _current.get()
    if trace is not None:
        trace.notes[name] = value if isinstance(value, float) else (
            int(trace.notes.get(name, 0)) + value)
