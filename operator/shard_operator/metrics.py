"""Prometheus metrics of the operator."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("shard_operator_reconciles_total", "Reconciles of one node id",
                     ["kind"])
RECONCILE_ERRORS = Counter("shard_operator_reconcile_errors_total",
                           "Reconciles that ended with an error", ["kind"])
RECONCILE_SECONDS = Histogram("shard_operator_reconcile_duration_seconds",
                              "Time of one reconcile", ["kind"],
                              buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
API_WRITES = Counter("shard_operator_api_writes_total", "Writes to the API server",
                     ["kind", "verb"])
SHARDS = Gauge("shard_operator_shards", "Shards per ShardSet by state",
               ["namespace", "shardset", "state"])
