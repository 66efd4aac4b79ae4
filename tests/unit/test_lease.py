"""The elector's pure decisions (:mod:`shard_operator.lease`), as tables: when a lease
has expired, what to do after a read, the spec to write, the release, and the renew
deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shard_operator import lease
from shard_operator.lease import Decision, Observed

NOW = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
STAMP = "2026-03-04T05:06:07.890123Z"


def spec(holder: str | None = "other", duration: int | None = 15, **more) -> dict:
    found = {"holderIdentity": holder, "leaseDurationSeconds": duration, **more}
    return {k: v for k, v in found.items() if v is not None}


@pytest.mark.parametrize(("observed_spec", "seen_at", "now", "ours", "expired"), [
    (spec(duration=15), 100.0, 114.9, 10.0, False),
    (spec(duration=15), 100.0, 115.0, 10.0, True),  # to the instant
    (spec(duration=None), 100.0, 109.9, 10.0, False),  # no duration written: ours
    (spec(duration=None), 100.0, 110.0, 10.0, True),
    (spec(duration=1), 100.0, 101.0, 15.0, True),  # a released lease: 1 s
])
def test_expired(observed_spec, seen_at, now, ours, expired) -> None:
    assert lease.expired(Observed(observed_spec, seen_at), now, ours) is expired


def test_observe_moves_only_on_a_change() -> None:
    first = lease.observe(None, spec(renewTime="a"), 100.0)
    assert first.at == 100.0
    assert lease.observe(first, spec(renewTime="a"), 150.0) is first
    assert lease.observe(first, spec(renewTime="b"), 150.0).at == 150.0


@pytest.mark.parametrize(("lease_spec", "seen_at", "now", "leading", "decision"), [
    (None, None, 100.0, False, Decision.CREATE),  # no Lease at all
    (spec("me"), 100.0, 100.0, True, Decision.WRITE),  # renew ours
    (spec("me"), 100.0, 100.0, False, Decision.WRITE),  # ours from before: take it back
    (spec("other"), 100.0, 110.0, False, Decision.WAIT),  # another's, still valid
    (spec("other"), 100.0, 115.0, False, Decision.WRITE),  # another's, expired: acquire
    (spec(None), 100.0, 100.0, False, Decision.WRITE),  # released: take it at once
    (spec(""), 100.0, 100.0, False, Decision.WRITE),
    (spec("other"), 100.0, 100.0, True, Decision.LOST),  # we lead, yet another holds it
    (spec("other"), 100.0, 500.0, True, Decision.LOST),  # even "expired": it wrote after us
    (spec(None), 100.0, 100.0, True, Decision.WRITE),  # no holder while leading: retake
], ids=lambda v: str(v))
def test_decide(lease_spec, seen_at, now, leading, decision) -> None:
    body = None if lease_spec is None else {"spec": lease_spec}
    observed = None if lease_spec is None else Observed(lease_spec, seen_at)
    assert lease.decide("me", body, observed, now, 15.0, leading) is decision
    if not leading:
        assert lease.may_acquire("me", body, observed, now, 15.0) is (
            decision in (Decision.CREATE, Decision.WRITE))


@pytest.mark.parametrize(("current", "expected"), [
    (None, {"holderIdentity": "me", "leaseDurationSeconds": 15, "acquireTime": STAMP,
            "renewTime": STAMP}),
    # a renewal keeps the acquire time and the transitions
    (spec("me", acquireTime="2026-01-01T00:00:00.000000Z", leaseTransitions=2,
          renewTime="x"),
     {"holderIdentity": "me", "leaseDurationSeconds": 15,
      "acquireTime": "2026-01-01T00:00:00.000000Z", "leaseTransitions": 2,
      "renewTime": STAMP}),
    # a takeover counts a transition and restarts the acquire time
    (spec("other", acquireTime="old", leaseTransitions=2, renewTime="x"),
     {"holderIdentity": "me", "leaseDurationSeconds": 15, "acquireTime": STAMP,
      "leaseTransitions": 3, "renewTime": STAMP}),
    # taking a released lease (no holder) is not a transition
    (spec(None, duration=1, acquireTime="old", renewTime="x"),
     {"holderIdentity": "me", "leaseDurationSeconds": 15, "acquireTime": STAMP,
      "renewTime": STAMP}),
])
def test_spec_for(current, expected) -> None:
    assert lease.spec_for("me", current, 15.9, NOW) == expected


def test_spec_for_times_are_utc_micro_times() -> None:
    tokyo = NOW.astimezone(timezone(timedelta(hours=9)))
    assert lease.spec_for("me", None, 15, tokyo)["renewTime"] == STAMP
    assert lease.micro_time(NOW.replace(microsecond=0)).endswith(".000000Z")


def test_released_spec_and_body() -> None:
    current = spec("me", acquireTime="a", renewTime="r", leaseTransitions=4)
    released = lease.released_spec(current, NOW)
    assert released == {"leaseDurationSeconds": 1, "acquireTime": STAMP, "renewTime": STAMP,
                        "leaseTransitions": 4}
    read = {"metadata": {"name": "l", "namespace": "ns", "resourceVersion": "7"}}
    assert lease.body("l", "ns", released, read) == {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "l", "namespace": "ns", "resourceVersion": "7"},
        "spec": released}
    assert lease.body("l", "ns", {})["metadata"] == {"name": "l", "namespace": "ns"}


@pytest.mark.parametrize(("renewed_at", "now", "passed"), [
    (None, 0.0, True),  # never renewed
    (100.0, 109.9, False),
    (100.0, 110.0, True),
])
def test_renew_deadline_passed(renewed_at, now, passed) -> None:
    assert lease.renew_deadline_passed(renewed_at, now, 10.0) is passed
