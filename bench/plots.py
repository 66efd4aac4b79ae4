"""PNG plots: converge time against N per system, and the start_shard latency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LABELS = {"operator": "shard-operator", "raw": "raw async client (best concurrency)",
          "statefulset": "StatefulSet (kcm, Parallel)"}


def converge(results: dict[str, Any], path: Path) -> bool:
    data = results.get("converge") or {}
    if not data:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for system, by_n in data.items():
        sizes = sorted(int(n) for n in by_n if by_n[n].get("median") is not None)
        if not sizes:
            continue
        med = [by_n[str(n)]["median"] for n in sizes]
        low = [m - by_n[str(n)]["min"] for n, m in zip(sizes, med, strict=True)]
        high = [by_n[str(n)]["max"] - m for n, m in zip(sizes, med, strict=True)]
        ax.errorbar(sizes, med, yerr=[low, high], marker="o", capsize=4,
                    label=LABELS.get(system, system))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N (keys = pods)")
    ax.set_ylabel("seconds until all pods Ready (+ key map)")
    ax.set_title("Cold converge (median, bars = min-max)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def latency(samples: list[float], path: Path, title: str) -> bool:
    if not samples:
        return False
    ordered = sorted(samples)
    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    hist.hist([s * 1000 for s in ordered], bins=40, color="tab:blue")
    hist.set_xlabel("ms")
    hist.set_ylabel("calls")
    hist.set_title("histogram")
    ys = [(i + 1) / len(ordered) for i in range(len(ordered))]
    cdf.plot([s * 1000 for s in ordered], ys, drawstyle="steps-post")
    cdf.axvline(1000, color="tab:red", linestyle="--", label="target p99 = 1 s")
    cdf.set_xlabel("ms")
    cdf.set_ylabel("fraction of calls")
    cdf.set_title("CDF")
    cdf.grid(True, alpha=0.3)
    cdf.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write_all(results: dict[str, Any], directory: Path) -> list[str]:
    made = []
    if converge(results, directory / "converge.png"):
        made.append("converge.png")
    samples = (results.get("start_shard") or {}).get("samples") or []
    if latency(samples, directory / "start_shard_latency.png",
               "start_shard until visible in a KeyMapWatcher (N = 1,000)"):
        made.append("start_shard_latency.png")
    return made
