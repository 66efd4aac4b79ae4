"""Degraded follows a shard that keeps failing, not the kubelet's instantaneous state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from shard_operator.failing import STABLE_SECONDS, is_failing, last_failure, recheck_after

NOW = 1_000_000.0


@dataclass
class Pod:
    restarts: int
    waiting_reason: str = ""
    last_failure: float | None = None


@pytest.mark.parametrize(("pod", "failing"), [
    (Pod(0), False),
    (Pod(1, last_failure=NOW - 1), False),                      # one crash is not a loop
    (Pod(3, "CrashLoopBackOff", NOW - 500), True),              # backing off
    (Pod(3, "", NOW - 1), True),                                # running between back-offs
    (Pod(3, "ContainerCreating", NOW - 2), True),
    (Pod(3, "", NOW - STABLE_SECONDS + 1), True),               # not up long enough yet
    (Pod(3, "", NOW - STABLE_SECONDS - 1), False),              # stayed up: clears
    (Pod(9, "", None), False),                                  # only clean exits
])
def test_is_failing(pod: Pod, failing: bool) -> None:
    assert is_failing(pod, NOW) is failing


def test_recheck_when_the_earliest_recent_failure_may_clear() -> None:
    pods = [Pod(3, "", NOW - 10), Pod(3, "", NOW - 50), Pod(3, "CrashLoopBackOff", NOW - 5),
            Pod(0)]
    assert recheck_after(pods, NOW) == pytest.approx(STABLE_SECONDS - 50 + 0.5)
    assert recheck_after([Pod(0), Pod(3, "CrashLoopBackOff", NOW)], NOW) is None


def test_last_failure_is_the_latest_non_zero_exit() -> None:
    statuses = [
        {"state": {"running": {}}, "lastState": {"terminated": {
            "exitCode": 1, "finishedAt": "2026-12-02T10:00:05Z"}}},
        {"state": {"terminated": {"exitCode": 0, "finishedAt": "2026-12-02T11:00:00Z"}}},
        {"state": {"terminated": {"exitCode": 137, "finishedAt": "2026-12-02T10:00:09Z"}}},
    ]
    latest = datetime(2026, 12, 2, 10, 0, 9, tzinfo=UTC).timestamp()
    assert last_failure(statuses) == latest  # not the later clean exit, nor the older 1
    assert last_failure([statuses[1]]) is None
    assert last_failure([]) is None
