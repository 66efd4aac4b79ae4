"""What must hold for one node id once the operator has converged, checked from the
API server's own objects (never from the operator's view), and a timer for recovery."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from shard_operator.constants import LABEL_NODE_ID, LABEL_SHARD
from shard_operator.keys import decode_segments, key_to_json, shard_name

REPORT = Path(os.environ.get("RELIABILITY_REPORT", "/tmp/shard-operator-reliability.jsonl"))


def violations(kubectl, set_name: str, node_id: str, keys: list[list[str]]) -> list[str]:
    """Every broken invariant (empty when converged) for ``keys`` (utf8) of ``node_id``."""
    problems: list[str] = []
    expected = {shard_name(node_id, decode_segments(k)): key_to_json(decode_segments(k))
                for k in keys}
    shards = [s for s in kubectl.items("shards") if s["spec"]["nodeId"] == node_id
              and not s["metadata"].get("deletionTimestamp")]
    names = Counter(s["metadata"]["name"] for s in shards)
    uids = {s["metadata"]["name"]: s["metadata"]["uid"] for s in shards}
    if set(names) != set(expected):
        missing, extra = set(expected) - set(names), set(names) - set(expected)
        problems.append(f"shards: {len(missing)} missing, {len(extra)} unexpected")
    for shard in shards:
        key = key_to_json(decode_segments(shard["spec"]["key"], shard["spec"]["keyEncoding"]))
        if expected.get(shard["metadata"]["name"], key) != key:
            problems.append(f"shard {shard['metadata']['name']} holds the wrong key {key}")
    ready = 0
    for kind in ("pods", "services"):
        objs = kubectl.items(kind, "-l", f"{LABEL_NODE_ID}={node_id}")
        live = [o for o in objs if not o["metadata"].get("deletionTimestamp")]
        per_shard = Counter(o["metadata"]["labels"].get(LABEL_SHARD) for o in live)
        dupes = [n for n, c in per_shard.items() if c > 1]
        orphans = [o["metadata"]["name"] for o in live
                   if o["metadata"]["labels"].get(LABEL_SHARD) not in expected]
        missing = [n for n in expected if per_shard.get(n, 0) == 0]
        wrong_owner = [o["metadata"]["name"] for o in live
                       if [r.get("uid") for r in o["metadata"].get("ownerReferences") or []]
                       != [uids.get(o["metadata"]["labels"].get(LABEL_SHARD))]]
        for what, found in (("duplicate", dupes), ("orphan", orphans), ("missing", missing),
                            ("wrongly owned", wrong_owner)):
            if found:
                problems.append(f"{kind}: {len(found)} {what} ({sorted(found)[:3]})")
        if kind == "pods":
            ready = sum(1 for o in live if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (o.get("status") or {}).get("conditions") or []))
    keymap = kubectl("get", "configmap", f"shard-key-map-{node_id}", "-o", "json", check=False)
    data = json.loads(keymap.stdout).get("data") or {} if keymap.returncode == 0 else {}
    entries = {k: v for k, v in data.items() if k.startswith(f"{node_id}-")}
    if entries != expected:
        problems.append(f"key map: {len(set(expected) - set(entries))} missing, "
                        f"{len(set(entries) - set(expected))} extra or wrong entries")
    obj = kubectl.json("shardset", set_name)
    status = obj.get("status") or {}
    cond = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
    facts = {"desiredShards": len(expected), "registeredShards": len(entries),
             "readyShards": ready, "observedGeneration": obj["metadata"]["generation"]}
    told = {k: status.get(k) for k in facts}
    if told != facts:
        problems.append(f"status {told} != facts {facts}")
    if cond.get("status") != "True":
        problems.append(f"Ready is {cond.get('status')} ({cond.get('reason')})")
    return problems


def converge(kubectl, set_name: str, node_id: str, keys: list[list[str]],
             timeout: float) -> float:
    """Seconds until every invariant holds; fails with the last violations after timeout."""
    started = time.monotonic()
    last: list[str] = []
    while time.monotonic() - started < timeout:
        last = violations(kubectl, set_name, node_id, keys)
        if not last:
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"not converged within {timeout} s: {last}")


def summary(seconds: list[float]) -> dict[str, float]:
    return {"n": len(seconds), "median_s": round(statistics.median(seconds), 2),
            "max_s": round(max(seconds), 2)}


def record(test: str, **figures: Any) -> None:
    """Append the test's figures to the report file (and print them for ``-s`` runs)."""
    line = json.dumps({"test": test, **figures}, sort_keys=True)
    print(f"RELIABILITY {line}")
    with REPORT.open("a") as out:
        out.write(line + "\n")
