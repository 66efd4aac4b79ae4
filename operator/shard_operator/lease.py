"""Leader election's decisions on a ``coordination.k8s.io/v1`` Lease: pure functions of
what was read, the identity and the clock (the loop that reads and writes is
:mod:`.leader`).

As client-go's elector: a candidate measures another holder's lease from when *it*
observed the Lease's spec last change (its own monotonic clock), never from the
``renewTime`` written by another machine's clock; the lease has expired once
``leaseDurationSeconds`` have passed since. Times written are UTC MicroTimes with six
fractional digits whatever the local time zone.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

API_VERSION = "coordination.k8s.io/v1"


def micro_time(moment: datetime | None = None) -> str:
    """A Kubernetes MicroTime: UTC, always six fractional digits."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Observed:
    """A Lease spec as last seen, and when (monotonic) it was first seen so."""

    spec: dict[str, Any]
    at: float


def observe(previous: Observed | None, spec: dict[str, Any], now: float) -> Observed:
    """The observation after reading ``spec`` at ``now``: the time moves only when the
    spec changed (a renewal, a new holder)."""
    if previous is not None and previous.spec == spec:
        return previous
    return Observed(dict(spec), now)


def holder(spec: dict[str, Any] | None) -> str:
    return str((spec or {}).get("holderIdentity") or "")


def expired(observed: Observed, now: float, lease_duration: float) -> bool:
    """Whether the holder's lease ran out: its ``leaseDurationSeconds`` (else ours) since
    the spec was seen to change."""
    duration = observed.spec.get("leaseDurationSeconds") or lease_duration
    return now >= observed.at + float(duration)


class Decision(enum.Enum):
    CREATE = "create"  # no Lease yet: create it with us as holder
    WRITE = "write"  # ours (renew) or free to take (acquire): replace it
    WAIT = "wait"  # another holder's lease is still valid
    LOST = "lost"  # we lead, yet another holder is written there: stop at once


def decide(identity: str, lease: dict[str, Any] | None, observed: Observed | None,
           now: float, lease_duration: float, leading: bool) -> Decision:
    """What to do after reading ``lease`` (None: not found)."""
    if lease is None:
        return Decision.CREATE
    current = holder(lease.get("spec"))
    if current == identity:
        return Decision.WRITE
    if current and leading:
        return Decision.LOST
    if not current or observed is None or expired(observed, now, lease_duration):
        return Decision.WRITE
    return Decision.WAIT


def may_acquire(identity: str, lease: dict[str, Any] | None, observed: Observed | None,
                now: float, lease_duration: float) -> bool:
    """A standby may write itself as holder (create, take a free or expired lease)."""
    return decide(identity, lease, observed, now, lease_duration, leading=False) in (
        Decision.CREATE, Decision.WRITE)


def spec_for(identity: str, current: dict[str, Any] | None, lease_duration: float,
             now: datetime) -> dict[str, Any]:
    """The spec that makes ``identity`` the holder, renewed ``now``: the acquire time is
    kept across renewals, a takeover from another holder counts a transition."""
    spec = dict(current or {})
    previous = holder(spec)
    stamp = micro_time(now)
    if previous != identity or not spec.get("acquireTime"):
        if previous and previous != identity:
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec["acquireTime"] = stamp
    spec["holderIdentity"] = identity
    spec["leaseDurationSeconds"] = max(1, int(float(lease_duration)))
    spec["renewTime"] = stamp
    return spec


def released_spec(current: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    """The spec that gives the lease up: no holder, a 1 s duration (client-go's
    release), so a standby takes it at its next attempt."""
    spec = {k: v for k, v in (current or {}).items() if k != "holderIdentity"}
    stamp = micro_time(now)
    spec.update(leaseDurationSeconds=1, acquireTime=stamp, renewTime=stamp)
    return spec


def body(name: str, namespace: str, spec: dict[str, Any],
         current: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Lease to create (``current`` None) or to replace: the read one's metadata,
    so that its resourceVersion makes the write lose a race rather than win it."""
    metadata = dict((current or {}).get("metadata") or {"name": name, "namespace": namespace})
    metadata.setdefault("namespace", namespace)
    return {"apiVersion": API_VERSION, "kind": "Lease", "metadata": metadata, "spec": spec}


def renew_deadline_passed(renewed_at: float | None, now: float, renew_deadline: float) -> bool:
    """The leader's last successful renewal (sent at ``renewed_at``, monotonic) is older
    than the renew deadline: it must stop writing."""
    return renewed_at is None or now >= renewed_at + renew_deadline
