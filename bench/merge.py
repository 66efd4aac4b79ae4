"""``python -m bench.merge OUT OTHER/latest.json SCENARIO...``: take the figures of some
scenarios from another run's latest.json into OUT/latest.json, note where they came
from, and re-render the summary and plots."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import plots, report


def merge(out: Path, other: Path, keys: list[str]) -> dict:
    doc = json.loads((out / "latest.json").read_text())
    source = json.loads(other.read_text())
    results = dict(doc["results"])
    for key in keys:
        if key in source["results"]:
            results[key] = source["results"][key]
    errors = {k: v for k, v in (results.get("errors") or {}).items()
              if not any(k.startswith(key) for key in keys)}
    results.pop("errors", None)
    if errors:
        results["errors"] = errors
    environment = dict(doc["environment"])
    environment["merged_runs"] = [*environment.get("merged_runs", []),
                                  {"results": keys, "config": source["config"],
                                   **source["environment"]}]
    merged = report.document(results, environment, doc["config"])
    merged["plots"] = plots.write_all(results, out)
    report.write(merged, out)
    return merged


def main() -> None:
    out, other, *keys = sys.argv[1:]
    merge(Path(out), Path(other), keys)


if __name__ == "__main__":
    main()
