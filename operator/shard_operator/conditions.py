"""Status conditions in the metav1.Condition shape, with stable transition times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(type_: str, status: bool | None, reason: str, message: str,
              generation: int | None = None) -> dict[str, Any]:
    value = "Unknown" if status is None else ("True" if status else "False")
    out: dict[str, Any] = {"type": type_, "status": value, "reason": reason, "message": message}
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def merge(old: list[dict[str, Any]] | None, new: list[dict[str, Any]], at: str | None = None
          ) -> list[dict[str, Any]]:
    """``new`` with each lastTransitionTime kept from ``old`` unless the status changed."""
    previous = {c.get("type"): c for c in old or []}
    stamp = at or now()
    merged = []
    for cond in new:
        before = previous.get(cond["type"])
        if before is not None and before.get("status") == cond["status"] and (
                before.get("lastTransitionTime")):
            time = before["lastTransitionTime"]
        else:
            time = stamp
        merged.append({**cond, "lastTransitionTime": time})
    return merged


def find(conditions: list[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)
