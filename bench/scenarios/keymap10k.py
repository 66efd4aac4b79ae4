"""Scenario 6: one ShardSet of 10,000 keys: converge, key map size, a watcher's initial
sync and lookup latency."""

from __future__ import annotations

import json
import time
from typing import Any

from shard_operator.client.keymap import KeyMapWatcher
from shard_operator.keys import key_map_name

from .. import stats
from ..context import Context, progress
from ..targets import KEY_MAP_LIMIT_BYTES
from . import converge


async def run(ctx: Context, n: int = 10_000) -> dict[str, Any]:
    result: dict[str, Any] = {"keys": n, "limit_bytes": KEY_MAP_LIMIT_BYTES, "converged": False}
    figures, live = await converge.operator(ctx, n, keep=True, timeout=2400.0)
    assert live is not None
    try:
        result.update(converged=True, converge_seconds=figures["seconds"],
                      operator_peak_mb=figures["peak_mb"],
                      operator_steady_mb=figures["steady_mb"],
                      data_bytes=figures["keymap_bytes"])
        body = await ctx.api.get(f"/api/v1/namespaces/{live.namespace}/configmaps/"
                                 f"{key_map_name(converge.NODE_ID)}")
        result["object_bytes"] = len(json.dumps(body, separators=(",", ":")).encode())
        result["entries"] = len(body.get("data") or {}) - converge.HEADER
        begin = time.monotonic()
        async with KeyMapWatcher(converge.NODE_ID, namespace=live.namespace) as watcher:
            result["watcher_sync_seconds"] = time.monotonic() - begin
            timings = []
            for i in range(n):
                t = time.perf_counter_ns()
                watcher.lookup([f"k{i}"])
                timings.append((time.perf_counter_ns() - t) / 1000.0)
            result["lookup_us"] = stats.distribution(timings)
    finally:
        try:
            await converge.finish(ctx, live)
        except Exception as error:  # the figures stand; a slow clean-up must not drop them
            result["cleanup_error"] = f"{type(error).__name__}: {error}"
            progress(f"    clean-up: {result['cleanup_error']}")
    return result
