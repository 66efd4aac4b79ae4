"""The results document (latest.json) and its markdown summary (pure)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .targets import evaluate

SYSTEMS = ("operator", "raw", "statefulset")


def document(results: dict[str, Any], environment: dict[str, Any], config: dict[str, Any]
             ) -> dict[str, Any]:
    """Everything latest.json holds: figures, targets, versions, machine, settings."""
    return {"environment": environment, "config": config, "results": results,
            "targets": [t.as_dict() for t in evaluate(results)]}


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != 0 and abs(value) < 0.01:
            return f"{value:.2g}"
        return f"{value:,.{digits}f}"
    return str(value)


def _spread(summary: dict[str, Any] | None, unit: str = "") -> str:
    if not summary or summary.get("median") is None:
        return "-"
    if summary["runs"] == 1:
        return f"{_fmt(summary['median'])}{unit} (1 run)"
    return (f"{_fmt(summary['median'])}{unit} ({_fmt(summary['min'])}-{_fmt(summary['max'])}, "
            f"{summary['runs']} runs)")


def markdown(doc: dict[str, Any]) -> str:
    """The summary table: targets first, then every figure with median and spread."""
    env, results = doc["environment"], doc["results"]
    lines = ["# Benchmark results", ""]
    machine = env.get("machine", {})
    lines.append(f"Run {env.get('started', '')} on {machine.get('cpu_model', '?')} "
                 f"({machine.get('cores', '?')} cores, {_fmt(machine.get('memory_gb'), 1)} GB); "
                 f"Python {env.get('python', '?')}, kopf {env.get('kopf', '?')}, "
                 f"Kubernetes {env.get('kubernetes', '?')}. Median (min-max, runs).")
    lines += ["", "## Targets", "", "| scenario | figure | value | target | met |",
              "|---|---|---|---|---|"]
    for t in doc["targets"]:
        lines.append(f"| {t['scenario']} | {t['figure']} | {_fmt(t['value'], 3)} | "
                     f"{t['target']} | {'✅' if t['met'] else '❌'} |")
    converge = results.get("converge") or {}
    sizes = sorted({int(n) for system in converge.values() for n in system})
    if sizes:
        lines += ["", "## 1 Cold converge (seconds)", "",
                  "| N | operator | raw (best concurrency) | StatefulSet | operator/raw | "
                  "operator/StatefulSet |", "|---|---|---|---|---|---|"]
        ratios = results.get("converge_ratios") or {}
        for n in sizes:
            row = [str(n)] + [_spread((converge.get(s) or {}).get(str(n))) for s in SYSTEMS]
            r = ratios.get(str(n)) or {}
            row += [_spread(r.get("operator/raw")), _spread(r.get("operator/statefulset"))]
            lines.append("| " + " | ".join(row) + " |")
        best = results.get("raw_concurrency") or {}
        if best:
            lines += ["", "Raw baseline, seconds by client concurrency: " + "; ".join(
                f"N={n}: " + ", ".join(f"{c}→{_fmt(s)}" for c, s in sorted(
                    v["seconds"].items(), key=lambda kv: int(kv[0])))
                + f" (best {v['best']})" for n, v in sorted(best.items(), key=lambda kv: int(
                    kv[0])))]
        for name, label in (("registration_lag", "operator"),
                            ("registration_lag_before", "operator (BENCH_BEFORE)")):
            lag = results.get(name) or {}
            if lag:
                lines += ["", f"Registration lag, {label} (a shard's Pod Ready → its key in "
                          "the map; 0 when listed before Ready), p50 / p99 / max (s): "
                          + "; ".join(f"N={n}: " + " / ".join(_fmt(d.get(k)) for k in (
                              "p50", "p99", "max")) for n, d in sorted(
                                  lag.items(), key=lambda kv: int(kv[0])) if d.get("count"))]
    lines += rollout_lines(results.get("rollout"))
    figures: list[tuple[str, str]] = []
    idle = results.get("idle")
    if idle:
        figures += [
            ("2 idle: operator writes in 60 s (apiserver count)", _fmt(idle["apiserver_writes"])),
            ("2 idle: operator writes in 60 s (operator counter)", _fmt(idle["operator_writes"])),
            ("2 idle: operator CPU (% of one core)", _fmt(idle["cpu_percent"])),
        ]
    for n, mem in sorted((results.get("memory") or {}).items(), key=lambda kv: int(kv[0])):
        figures.append((f"3 memory: operator RSS at N={n}, peak / after converging (MB)",
                        f"{_fmt(mem.get('peak_mb'), 0)} / {_fmt(mem.get('steady_mb'), 0)}"))
    latency = (results.get("start_shard") or {}).get("latency")
    if latency:
        figures.append(("4 start_shard → visible in watcher, p50 / p90 / p99 / max (s)",
                        " / ".join(_fmt(latency.get(k), 3) for k in ("p50", "p90", "p99",
                                                                      "max"))))
    recovery = results.get("recovery")
    if recovery:
        lat = recovery["latency"]
        figures.append((f"5 recovery of {recovery['deleted']} deleted pods, p50 / p99 / all (s)",
                        f"{_fmt(lat.get('p50'))} / {_fmt(lat.get('p99'))} / "
                        f"{_fmt(recovery.get('all_back_seconds'))}"))
    keymap = results.get("keymap")
    if keymap:
        figures += [
            (f"6 {keymap['keys']:,} keys: converge (s)", _fmt(keymap.get("converge_seconds"))),
            ("6 key map ConfigMap size / limit (bytes)",
             f"{_fmt(keymap.get('object_bytes'))} / {_fmt(keymap.get('limit_bytes'))}"),
            ("6 watcher initial sync (s)", _fmt(keymap.get("watcher_sync_seconds"), 3)),
            ("6 lookup p50 / p99 (µs)", f"{_fmt((keymap.get('lookup_us') or {}).get('p50'))} / "
                                        f"{_fmt((keymap.get('lookup_us') or {}).get('p99'))}"),
            (f"6 operator peak RSS at {keymap['keys']:,} keys (MB)",
             _fmt(keymap.get("operator_peak_mb"), 0)),
        ]
    server = results.get("server")
    if server:
        figures += [
            ("7 shard server reserve+write+advance-watermark+read cycles/s",
             _spread(server.get("cycles_per_second"))),
            ("7 no-op aiohttp cycles/s (same client)",
             _spread(server.get("noop_cycles_per_second"))),
            ("7 ratio", _spread(server.get("ratio"))),
            ("7 diagnostic: shard server with its data dir in RAM, cycles/s (ratio)",
             f"{_spread(server.get('ram_data_dir_cycles_per_second'))} "
             f"({_spread(server.get('ram_data_dir_ratio'))})"),
            ("7 append + fdatasync on the same disk, p50 (ms)",
             _spread(server.get("fsync_ms_p50"))),
            ("7 ceiling: no-op cycle + 3 fsyncs (ratio)",
             _spread(server.get("durable_ceiling_ratio"))),
            ("7 ceiling measured: no-op server + append + fdatasync per change (ratio)",
             _spread(server.get("measured_ceiling_ratio"))),
            ("7 sequential / measured ceiling", _spread(server.get("ratio_of_ceiling"))),
            ("7 sequential / formula ceiling (back-to-back fsync p50)",
             _spread(server.get("ratio_of_formula_ceiling"))),
            ("7 write + fdatasync into a preallocated file, p50 (ms)",
             _spread(server.get("preallocated_fsync_ms_p50"))),
            ("7 same server on SQLite (WAL, synchronous=FULL), cycles/s (ratio to no-op)",
             f"{_spread(server.get('sqlite_cycles_per_second'))} "
             f"({_spread(server.get('sqlite_ratio'))})"),
            ("7 SQLite / snapshot+journal, sequential", _spread(server.get("sqlite_vs_shard"))),
        ]
        concurrent = server.get("concurrent") or {}
        rates = concurrent.get("cycles_per_second") or {}
        figures += [
            (f"7 {concurrent.get('in_flight', 32)} in flight: {name} cycles/s",
             _spread(rates.get(name)))
            for name in ("shard", "noop", "noop_fsync", "sqlite", "ram", "before")
            if name in rates
        ]
        if concurrent:
            figures += [
                ("7 in flight: shard / no-op", _spread(concurrent.get("ratio"))),
                ("7 in flight: data dir in RAM / no-op",
                 _spread(concurrent.get("ram_data_dir_ratio"))),
                ("7 in flight: SQLite / no-op", _spread(concurrent.get("sqlite_ratio"))),
                ("7 in flight: SQLite / snapshot+journal",
                 _spread(concurrent.get("sqlite_vs_shard"))),
            ]
        before = server.get("before")
        if before:
            figures += [
                ("7 before (BENCH_BEFORE): sequential cycles/s (ratio; / measured ceiling; "
                 "/ formula ceiling)",
                 f"{_spread(before.get('cycles_per_second'))} "
                 f"({_spread(before.get('ratio'))}; {_spread(before.get('ratio_of_ceiling'))}; "
                 f"{_spread(before.get('ratio_of_formula_ceiling'))})"),
                ("7 before (BENCH_BEFORE): in flight cycles/s (ratio)",
                 f"{_spread(before.get('concurrent_cycles_per_second'))} "
                 f"({_spread(before.get('concurrent_ratio'))})"),
            ]
        figures += [
            (f"7 RSS with {server.get('blocked_readers', 0):,} blocked readers / idle (MB)",
             f"{_fmt(server.get('rss_mb_with_readers'), 0)} / "
             f"{_fmt(server.get('rss_mb_idle'), 0)}"),
            ("7 time to answer all blocked readers after the write (s)",
             _fmt(server.get("release_seconds"))),
        ]
    if figures:
        lines += ["", "## Other figures", "", "| figure | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in figures]
    return "\n".join(lines) + "\n"


def rollout_lines(rollout: dict[str, Any] | None) -> list[str]:
    """Scenario 8's table: per system, duration, peak / budget, mean unavailable."""
    if not rollout:
        return []
    n = rollout.get("size")
    lines = ["", f"## 8 Rollout of a template change, N = {n} (seconds)", "",
             "| system | rollout (s) | peak unavailable / budget | mean unavailable | "
             "passes | / StatefulSet |", "|---|---|---|---|---|---|"]
    ratios = rollout.get("ratios") or {}
    for system, summary in (rollout.get("seconds") or {}).items():
        runs = [r[system] for r in rollout.get("runs") or [] if system in r]
        means = [r["mean_unavailable"] for r in runs if r.get("mean_unavailable") is not None]
        passes = [r["passes"] for r in runs if r.get("passes") is not None]
        lines.append(
            f"| {system} | {_spread(summary)} | "
            f"{_fmt((rollout.get('peak_unavailable') or {}).get(system))} / "
            f"{_fmt((rollout.get('budget') or {}).get(system))} | "
            f"{_fmt(max(means)) if means else '-'} | "
            f"{_fmt(int(max(passes))) if passes else '-'} | "
            f"{_spread(ratios.get(f'{system}/statefulset'))} |")
    return lines


def write(doc: dict[str, Any], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "latest.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    (directory / "summary.md").write_text(markdown(doc))
