"""Which shards' pods to replace in a template rollout: pure decisions, table-tested.

The rule, as a StatefulSet's ``RollingUpdate`` with ``maxUnavailable``:
- a shard is replaced only while the shards unavailable, counting those already down,
  stay within the budget; the next waits until a replacement is Ready;
- an outdated pod that is already unavailable is replaced first, as it costs nothing;
- ``partition`` updates only the shards whose names sort at or after it (a canary);
- ``OnDelete`` never replaces a pod: a pod deleted by hand comes back on the new template.

A PodDisruptionBudget limits evictions only, not the operator's own deletes; this
module is how the operator keeps its own rollout within the same budget.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

ROLLING_UPDATE = "RollingUpdate"
ON_DELETE = "OnDelete"
DEFAULT_MAX_UNAVAILABLE: int | str = 1


class StrategyError(ValueError):
    """An update strategy the CRD schema let through but that cannot be used."""


@dataclass(frozen=True)
class UpdateStrategy:
    type: str = ROLLING_UPDATE
    max_unavailable: int | str = DEFAULT_MAX_UNAVAILABLE
    partition: str = ""  # "": every shard

    @classmethod
    def parse(cls, spec: dict[str, Any] | None) -> UpdateStrategy:
        """From ``spec.updateStrategy`` (absent: RollingUpdate, maxUnavailable 1)."""
        spec = spec or {}
        kind = spec.get("type", ROLLING_UPDATE)
        if kind not in (ROLLING_UPDATE, ON_DELETE):
            raise StrategyError(f"spec.updateStrategy.type: {kind!r} is not "
                                f"{ROLLING_UPDATE} or {ON_DELETE}")
        rolling = spec.get("rollingUpdate") or {}
        strategy = cls(kind, rolling.get("maxUnavailable", DEFAULT_MAX_UNAVAILABLE),
                       str(rolling.get("partition", "")))
        strategy.budget(1)  # validates maxUnavailable
        return strategy

    def budget(self, desired: int) -> int:
        """How many shards may be unavailable at once: an int, or a percentage of
        ``desired`` rounded up (as a StatefulSet does); never less than 1."""
        value = self.max_unavailable
        if isinstance(value, bool):
            raise StrategyError("spec.updateStrategy.rollingUpdate.maxUnavailable: "
                                "an integer or a percentage")
        if isinstance(value, int):
            if value < 1:
                raise StrategyError("spec.updateStrategy.rollingUpdate.maxUnavailable: "
                                    f"{value} is below 1")
            return value
        text = str(value)
        if not text.endswith("%") or not text[:-1].isdigit() or not 0 < int(text[:-1]) <= 100:
            raise StrategyError("spec.updateStrategy.rollingUpdate.maxUnavailable: "
                                f"{text!r} is not an integer or a percentage in 1%..100%")
        return max(1, math.ceil(desired * int(text[:-1]) / 100))

    def in_partition(self, name: str) -> bool:
        return name >= self.partition

    def replaces(self, name: str) -> bool:
        """Whether an outdated pod of shard ``name`` is for this strategy to replace
        (not under ``OnDelete``, nor below the partition)."""
        return self.type != ON_DELETE and self.in_partition(name)


class ShardPod(NamedTuple):
    """What the rollout needs to know of one shard's pod (a tuple: a pass makes one
    per shard, twice)."""
    name: str
    exists: bool  # a pod exists (and is not being deleted)
    ready: bool
    outdated: bool  # runs an older template than the ShardSet's


def to_replace(pods: Iterable[ShardPod], strategy: UpdateStrategy) -> list[str]:
    """The names of the shards whose pods to delete now, to be recreated on the new
    template, in the order to delete them."""
    pods = sorted(pods, key=lambda p: p.name)
    if strategy.type == ON_DELETE:
        return []
    unavailable = sum(1 for p in pods if not (p.exists and p.ready))
    room = strategy.budget(len(pods)) - unavailable
    candidates = [p for p in pods if p.exists and p.outdated and strategy.in_partition(p.name)]
    chosen = [p.name for p in candidates if not p.ready]  # already down: free
    for pod in candidates:
        if pod.ready and room > 0:
            chosen.append(pod.name)
            room -= 1
    return chosen


@dataclass(frozen=True)
class RolloutStatus:
    desired: int
    updated: int  # pods on the current template
    ready: int
    updated_ready: int
    pending: int  # outdated pods the strategy will still replace

    @property
    def complete(self) -> bool:
        """No outdated pod is left for the strategy to replace (readiness is the
        ShardSet's Ready condition's business)."""
        return self.pending == 0


def status(pods: Iterable[ShardPod], strategy: UpdateStrategy) -> RolloutStatus:
    pods = list(pods)
    updated = [p for p in pods if p.exists and not p.outdated]
    pending = sum(1 for p in pods if p.exists and p.outdated and strategy.replaces(p.name))
    return RolloutStatus(
        desired=len(pods), updated=len(updated),
        ready=sum(1 for p in pods if p.exists and p.ready),
        updated_ready=sum(1 for p in updated if p.ready), pending=pending)
