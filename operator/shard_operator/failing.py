"""When a shard counts as failing, for the ShardSet's ``Degraded`` condition.

The kubelet's view of a crash-looping container flips between ``CrashLoopBackOff``,
``Error`` and running at every restart; following that instantaneous state made
Degraded flap True → False → True (a status write and an event each time). A shard is
failing instead while it keeps failing, as the original escalates after repeated
restarts: it waits in ``CrashLoopBackOff``, or it has restarted at least
``CRASH_RESTARTS`` times and its last failure (a non-zero exit) is less than
``STABLE_SECONDS`` ago. It clears only once it has stayed up that long.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

CRASH_RESTARTS = 2
STABLE_SECONDS = 60.0


class PodHealth(Protocol):
    restarts: int
    waiting_reason: str
    last_failure: float | None  # epoch seconds of the latest non-zero exit


def is_failing(pod: PodHealth, now: float) -> bool:
    if pod.waiting_reason == "CrashLoopBackOff":
        return True
    return (pod.restarts >= CRASH_RESTARTS and pod.last_failure is not None
            and now - pod.last_failure < STABLE_SECONDS)


def recheck_after(pods: Iterable[PodHealth], now: float) -> float | None:
    """Seconds until the earliest failing-by-recency shard may clear (so that a pass
    then re-derives Degraded without waiting for an event), or None."""
    waits = [pod.last_failure + STABLE_SECONDS - now for pod in pods
             if pod.waiting_reason != "CrashLoopBackOff" and is_failing(pod, now)
             and pod.last_failure is not None]
    return max(0.5, min(waits) + 0.5) if waits else None


def last_failure(container_statuses: list[dict]) -> float | None:
    """The latest non-zero exit among a pod's containers (current or last state)."""
    times = []
    for status in container_statuses:
        for state in (status.get("state") or {}, status.get("lastState") or {}):
            terminated = state.get("terminated") or {}
            if terminated.get("exitCode", 0) != 0 and terminated.get("finishedAt"):
                times.append(datetime.fromisoformat(terminated["finishedAt"]).timestamp())
    return max(times) if times else None
