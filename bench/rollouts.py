"""The rollout scenario's pure parts: what a stream of observed pod events says about a
rollout (its duration, the peak of unavailable pods against the budget), and the
scenario's targets. No cluster, no clock: every observation carries its own time.

A rollout is a change of the pod template's ``BENCH_ROLL`` environment variable (in
the first container): a pod is *updated* when its value is the rollout's, *available*
when it is Running with Ready=True and not being deleted. The rollout starts at the
template change and is done at the first observation after which all ``desired`` pods
are updated and available. Unavailable = desired - available pods, evaluated after
every observation: a watch delivers a collection's changes one by one in
resourceVersion order, so this is every state the API server went through, not a
sample.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import stats
from .targets import Target, target

MARKER = "BENCH_ROLL"  # the env var a rollout changes in the template's first container
SCENARIO = "8 rollout"


def marker(pod: dict[str, Any]) -> str | None:
    """The pod's ``BENCH_ROLL`` value (first container), None without one."""
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    for env in containers[0].get("env") or []:
        if env.get("name") == MARKER:
            return str(env.get("value", ""))
    return None


def available(pod: dict[str, Any]) -> bool:
    """Running, Ready=True and not being deleted."""
    status = pod.get("status") or {}
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or [])


@dataclass(frozen=True)
class Observation:
    """One watch event of one pod, reduced to what a rollout needs."""
    at: float  # seconds, any monotonic clock
    kind: str  # ADDED, MODIFIED, DELETED
    name: str
    uid: str
    available: bool
    marker: str | None
    deleting: bool = False

    @classmethod
    def of(cls, kind: str, pod: dict[str, Any], at: float) -> Observation:
        meta = pod["metadata"]
        return cls(at, kind, meta["name"], meta.get("uid", ""),
                   kind != "DELETED" and available(pod), marker(pod),
                   bool(meta.get("deletionTimestamp")))


@dataclass
class Rollout:
    """The pods of one set as observed, and the rollout's figures so far. Feed it every
    observation in order (those before :meth:`start` give the state it starts from)."""

    desired: int
    want: str  # the marker value of the new template
    pods: dict[str, Observation] = field(default_factory=dict)  # name -> latest
    started_at: float | None = None
    finished_at: float | None = None
    peak_unavailable: int = 0
    replaced: set[str] = field(default_factory=set)  # uids of new pods seen
    # When each step of each replacement was first seen (uid -> time), after the start:
    deleting_at: dict[str, float] = field(default_factory=dict)  # old pod marked deleted
    gone_at: dict[str, float] = field(default_factory=dict)  # old pod DELETED
    created_at: dict[str, float] = field(default_factory=dict)  # new pod ADDED
    ready_at: dict[str, float] = field(default_factory=dict)  # new pod available
    old_of: dict[str, str] = field(default_factory=dict)  # new uid -> old uid, same name
    _uid_of: dict[str, str] = field(default_factory=dict)  # name -> last old uid seen
    # Pods that went from available to not Ready with no deletion asked (on KWOK only the
    # node lifecycle controller does that: a node it found NotReady), after the start:
    disrupted: set[str] = field(default_factory=set)
    _last_at: float | None = None
    _weighted: float = 0.0  # integral of unavailable over time since start

    @property
    def available(self) -> int:
        return sum(1 for p in self.pods.values() if p.available)

    @property
    def unavailable(self) -> int:
        return max(0, self.desired - self.available)

    @property
    def updated_available(self) -> int:
        return sum(1 for p in self.pods.values() if p.available and p.marker == self.want)

    @property
    def done(self) -> bool:
        return self.finished_at is not None

    def start(self, at: float) -> None:
        """The template change is sent now: figures count from here."""
        self.started_at = self._last_at = at
        self.peak_unavailable = self.unavailable
        self._check(at)

    def observe(self, event: Observation) -> None:
        timing = self.started_at is not None and not self.done
        if timing:  # the state before this event held since the last one
            assert self._last_at is not None
            self._weighted += self.unavailable * max(0.0, event.at - self._last_at)
            self._last_at = max(self._last_at, event.at)
        if timing:
            self._steps(event)
        previous = self.pods.get(event.name)
        if (timing and event.kind == "MODIFIED" and previous is not None
                and previous.uid == event.uid and previous.available
                and not event.available and not event.deleting):
            self.disrupted.add(event.uid)
        if event.kind == "DELETED":
            current = self.pods.get(event.name)
            if current is not None and current.uid == event.uid:
                del self.pods[event.name]
        else:
            self.pods[event.name] = event
            if self.started_at is not None and event.marker == self.want:
                self.replaced.add(event.uid)
        if not timing:
            return
        self.peak_unavailable = max(self.peak_unavailable, self.unavailable)
        self._check(event.at)

    def _steps(self, event: Observation) -> None:
        new = event.marker == self.want
        if not new:
            self._uid_of[event.name] = event.uid
            if event.kind == "DELETED":
                self.gone_at.setdefault(event.uid, event.at)
            elif event.deleting:
                self.deleting_at.setdefault(event.uid, event.at)
            return
        if event.kind == "DELETED":
            return
        if event.uid not in self.created_at:
            self.created_at[event.uid] = event.at
            if event.name in self._uid_of:
                self.old_of[event.uid] = self._uid_of[event.name]
        if event.available:
            self.ready_at.setdefault(event.uid, event.at)

    def steps(self) -> dict[str, dict[str, Any]]:
        """Where a replacement's time goes, medians (and p90) over the replacements seen:
        old pod marked deleted → gone, gone → new pod created, created → Ready, and a
        replacement Ready → the next deletion (the controller's reaction)."""
        spans: dict[str, list[float]] = {"deleting_to_gone": [], "gone_to_created": [],
                                         "created_to_ready": [], "ready_to_next_delete": []}
        for uid, gone in self.gone_at.items():
            if uid in self.deleting_at:
                spans["deleting_to_gone"].append(gone - self.deleting_at[uid])
        for new, old in self.old_of.items():
            if old in self.gone_at:
                spans["gone_to_created"].append(self.created_at[new] - self.gone_at[old])
            if new in self.ready_at:
                spans["created_to_ready"].append(self.ready_at[new] - self.created_at[new])
        readies = sorted(self.ready_at.values())
        for deleted in sorted(self.deleting_at.values()):
            before = [r for r in readies if r <= deleted]
            if before:
                spans["ready_to_next_delete"].append(deleted - before[-1])
        return {name: stats.distribution(values) for name, values in spans.items()}

    def _check(self, at: float) -> None:
        if self.updated_available >= self.desired and self.finished_at is None:
            self.finished_at = at

    def figures(self) -> dict[str, Any]:
        """Duration, peak and mean unavailable (time-weighted), pods replaced."""
        seconds = (self.finished_at - self.started_at
                   if self.finished_at is not None and self.started_at is not None else None)
        return {"seconds": seconds, "peak_unavailable": self.peak_unavailable,
                "mean_unavailable": self._weighted / seconds if seconds else None,
                "replaced": len(self.replaced), "desired": self.desired,
                "disrupted": len(self.disrupted),
                "done": self.done, "steps": self.steps()}


def replay(before: Iterable[Observation], after: Iterable[Observation], *, desired: int,
           want: str, started_at: float) -> dict[str, Any]:
    """The figures of a rollout from the observations before and after its start."""
    rollout = Rollout(desired, want)
    for event in before:
        rollout.observe(event)
    rollout.start(started_at)
    for event in after:
        rollout.observe(event)
    return rollout.figures()


def budget(max_unavailable: int | str, desired: int) -> int:
    """What a maxUnavailable allows at ``desired`` pods: an integer, or a percentage
    rounded up, at least 1 (as the operator and a StatefulSet read it)."""
    if isinstance(max_unavailable, int):
        return max(1, max_unavailable)
    percent = int(str(max_unavailable).rstrip("%"))
    return max(1, -(-desired * percent // 100))


def summarize(n: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Scenario 8's figures over its repetitions: durations, per-run ratios to the
    StatefulSet, the worst peak of unavailable pods seen and the budget."""
    systems = sorted({s for run in runs for s in run})
    seconds = {s: [r[s]["seconds"] for r in runs if r.get(s, {}).get("seconds")]
               for s in systems}
    out: dict[str, Any] = {
        "size": n, "runs": runs,
        "seconds": {s: stats.summarize(v) for s, v in seconds.items()},
        "peak_unavailable": {s: max(r[s]["peak_unavailable"] for r in runs if s in r)
                             for s in systems},
        "budget": {s: next(r[s]["budget"] for r in runs if s in r) for s in systems},
        "ratios": {},
    }
    for system in ("operator@1", "operator@10%", "before@1", "before@10%"):
        pairs = [(r[system]["seconds"], r["statefulset@1"]["seconds"]) for r in runs
                 if (r.get(system) or {}).get("seconds")
                 and (r.get("statefulset@1") or {}).get("seconds")]
        if pairs:
            out["ratios"][f"{system}/statefulset"] = stats.summarize(
                stats.ratios([a for a, _ in pairs], [b for _, b in pairs]))
    return out


def evaluate(results: dict[str, Any]) -> list[Target]:
    """The scenario's targets: operator / StatefulSet at maxUnavailable 1 (median of the
    per-run ratios) ≤ 1, and each operator rollout's peak unavailable ≤ its budget."""
    rollout = results.get("rollout")
    if not rollout:
        return []
    n = rollout.get("size")
    ratio = ((rollout.get("ratios") or {}).get("operator@1/statefulset") or {}).get("median")
    out = [target(SCENARIO, f"N={n} rollout operator (maxUnavailable 1) / StatefulSet "
                  "(median of per-run ratios)", ratio, "<=", 1.0)]
    for system in ("operator@1", "operator@10%"):
        peak = (rollout.get("peak_unavailable") or {}).get(system)
        allowed = (rollout.get("budget") or {}).get(system)
        if allowed is None:
            continue
        out.append(target(SCENARIO, f"N={n} {system}: peak unavailable pods seen through "
                          "the watch", peak, "<=", allowed))
    return out
