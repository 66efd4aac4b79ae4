"""The targets of issues #7 and #17 (a raised bound beside the old one), evaluated against
a results dict (pure)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

MIB = 1024 * 1024
KEY_MAP_LIMIT_BYTES = MIB  # a ConfigMap's data limit


@dataclass(frozen=True)
class Target:
    scenario: str
    figure: str
    value: float | None
    target: str
    met: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(value: float | None, op: str, bound: float) -> bool:
    if value is None:
        return False
    compare: dict[str, Callable[[float, float], bool]] = {
        "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "==": lambda a, b: a == b}
    return compare[op](value, bound)


def _target(scenario: str, figure: str, value: float | None, op: str, bound: float,
            unit: str = "") -> Target:
    return Target(scenario, figure, value, f"{op} {bound:g}{unit}", _check(value, op, bound))


# Issue #17's name for the figure (the bench measures it over every shard of the run).
REGISTRATION_LAG = ("registration lag: a shard's Pod Ready → its key in the map, "
                    "p99 at N = 5,000 (s)")

target = _target  # for the scenarios' own target lists (bench.rollouts)


def _get(results: dict[str, Any], *path: str) -> Any:
    node: Any = results
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def evaluate(results: dict[str, Any]) -> list[Target]:
    """One Target per figure the issue sets a bound on, for the scenarios that ran."""
    out: list[Target] = []
    ratios = _get(results, "converge_ratios", "1000")
    if ratios:
        out.append(_target("1 cold converge", "N=1000 operator / raw (median of per-run ratios)",
                           _get(ratios, "operator/raw", "median"), "<=", 1.25))
        out.append(_target("1 cold converge",
                           "N=1000 operator / StatefulSet (median of per-run ratios)",
                           _get(ratios, "operator/statefulset", "median"), "<=", 1.0))
    # Issue #17's figures, under the names of its table.
    for n, by_base in sorted((results.get("converge_ratios") or {}).items(),
                             key=lambda kv: int(kv[0])):
        ratio = _get(by_base, "operator/raw", "median")
        if ratio is not None:
            out.append(_target("1 cold converge", f"converge operator/raw, N = {int(n):,}",
                               ratio, "<=", 1.10))
    lag = _get(results, "registration_lag", "5000")
    if lag and lag.get("count"):
        out.append(_target("1 cold converge", REGISTRATION_LAG, lag.get("p99"), "<=", 2.0, " s"))
    idle = results.get("idle")
    if idle:
        out.append(_target("2 idle cost", "operator API writes in 60 s after converging "
                           "(apiserver count)", idle.get("apiserver_writes"), "==", 0))
        out.append(_target("2 idle cost", "operator API writes in 60 s (operator's own counter)",
                           idle.get("operator_writes"), "==", 0))
    memory = results.get("memory") or {}
    if "5000" in memory:
        out.append(_target("3 memory", "operator peak RSS at N=5000 (MB)",
                           memory["5000"].get("peak_mb"), "<=", 200, " MB"))
        out.append(_target("3 memory", "operator peak RSS, N = 5,000",  # issue #17
                           memory["5000"].get("peak_mb"), "<=", 120, " MB"))
    latency = _get(results, "start_shard", "latency")
    if latency:
        out.append(_target("4 start_shard", "p99 until visible in a KeyMapWatcher (s)",
                           latency.get("p99"), "<=", 1.0, " s"))
    recovery = _get(results, "recovery", "latency")
    if recovery:
        out.append(_target("5 recovery", "p99 until a deleted pod is back and Ready (s)",
                           recovery.get("p99"), "<=", 5.0, " s"))
    keymap = results.get("keymap")
    if keymap:
        out.append(_target("6 key map 10k", "converged (1 = yes)",
                           1.0 if keymap.get("converged") else 0.0, "==", 1))
        out.append(_target("6 key map 10k", "key map ConfigMap size (bytes)",
                           keymap.get("object_bytes"), "<=", KEY_MAP_LIMIT_BYTES))
        out.append(_target("6 key map 10k", "watcher initial sync (s)",
                           keymap.get("watcher_sync_seconds"), "<=", 5.0, " s"))
        out.append(_target("6 key map 10k", "lookup p99 (µs)",
                           _get(keymap, "lookup_us", "p99"), "<=", 100.0, " µs"))
        if keymap.get("keys") == 10_000 and "operator_peak_mb" in keymap:  # issue #17
            out.append(_target("6 key map 10k", "operator peak RSS, 10,000 keys",
                               keymap.get("operator_peak_mb"), "<=", 160, " MB"))
    server = results.get("server")
    if server:
        out.append(_target("7 shard server", "cycles/s vs no-op aiohttp (median ratio)",
                           _get(server, "ratio", "median"), ">=", 0.5))
        if "ratio_of_ceiling" in server:  # issue #17's figures, measured since then
            out.append(_target("7 shard server", "shard server sequential cycles / the ceiling "
                               "(no-op cycle + 3 fdatasyncs, same run)",
                               _get(server, "ratio_of_ceiling", "median"), ">=", 0.9))
        if "concurrent" in server:
            out.append(_target("7 shard server", "shard server with 32 transactions in "
                               "flight / no-op server at the same concurrency",
                               _get(server, "concurrent", "ratio", "median"), ">=", 0.8))
    from . import rollouts  # it builds its targets with this module's helpers

    out.extend(rollouts.evaluate(results))
    return out
