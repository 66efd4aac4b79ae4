"""Prometheus metrics of one shard server, in a registry of its own (never the global one)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "ServerMetrics"]


class ServerMetrics:
    """The metrics a shard server exports on ``GET /metrics``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "shard_http_requests",
            "HTTP requests answered, by route template, method and status code",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "shard_http_request_duration_seconds",
            "Time from receiving a request to answering it (reads include waiting)",
            ["route", "method"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.operations = Counter(
            "shard_operations",
            "Cell operations by outcome (ok, occupied, applied, not_applied, ...)",
            ["operation", "outcome"],
            registry=r,
        )
        self.waiting_readers = Gauge(
            "shard_waiting_readers", "Blocking reads currently waiting", registry=r
        )
        self.persisted_changes = Counter(
            "shard_persisted_changes",
            "Accepted state changes (reserve, write, unreserve, advance) made durable",
            registry=r,
        )
        self.commits = Counter(
            "shard_state_commits",
            "Group commits: journal appends, or checkpoints (snapshot replacements)",
            registry=r,
        )
        self.commit_duration = Histogram(
            "shard_state_commit_duration_seconds",
            "Time to append and fsync the journal, or to write a checkpoint",
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.state_file_bytes = Gauge(
            "shard_state_file_bytes",
            "After the last commit: the journal's size, or the snapshot's after a checkpoint",
            registry=r,
        )
        self.persistence_failed = Gauge(
            "shard_persistence_failed",
            "1 once a commit failed (the server then stops)",
            registry=r,
        )

    def track_waiting_readers(self, count: Callable[[], int]) -> None:
        self.waiting_readers.set_function(count)

    def on_commit(self, changes: int, written: int, seconds: float) -> None:
        self.commits.inc()
        self.persisted_changes.inc(changes)
        self.commit_duration.observe(seconds)
        self.state_file_bytes.set(written)

    def render(self) -> bytes:
        return generate_latest(self.registry)
