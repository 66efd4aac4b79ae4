"""Prometheus metrics of the operator.

Two levels, both "per kind":

* a *reconcile* is one pass over one node id, i.e. one ShardSet and everything it owns:
  ``shard_operator_reconciles_total``, ``..._reconcile_errors_total`` (passes that
  raised or ended with a failed API call and were re-queued) and
  ``..._reconcile_duration_seconds``, labelled ``kind="ShardSet"``;
* within a pass, every API request is counted and timed by the kind of object it
  concerns (ShardSet, Shard, Pod, Service, ConfigMap, Event) and its verb:
  ``shard_operator_api_requests_total{kind,verb,code}`` and
  ``shard_operator_api_request_duration_seconds{kind,verb}``; ``code`` is the HTTP
  status class (2xx, 4xx, 5xx) or ``error`` when no response came back. The verbs
  are those of :mod:`.kube`: get, list, watch, create, replace, patch, patch-status,
  delete.

``shard_operator_shards{namespace,shardset,state}`` gives desired, registered and
ready shards per ShardSet; ``shard_operator_shardset_condition{namespace,shardset,type,
status}`` its conditions as last computed (1 for the condition's status, 0 for the other
two, as kube-state-metrics does), and ``shard_operator_shardset_restarts`` the container
restarts over its shards. The chart's alerts and dashboard use them (docs/monitoring.md).

Leader election (:mod:`.leader`): ``shard_operator_leader`` is 1 on the replica that
holds the Lease and may write (0 on a standby, and from the moment leadership ends);
``shard_operator_fenced_writes_total{kind,verb}`` counts writes the fence refused
(:mod:`.fence`: a replica that lost, or never held, the lease).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("shard_operator_reconciles_total", "Reconciles of one node id",
                     ["kind"])
RECONCILE_ERRORS = Counter("shard_operator_reconcile_errors_total",
                           "Reconciles that raised or ended with a failed API call",
                           ["kind"])
RECONCILE_SECONDS = Histogram("shard_operator_reconcile_duration_seconds",
                              "Time of one reconcile", ["kind"],
                              buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
API_WRITES = Counter("shard_operator_api_writes_total", "Successful writes to the API server",
                     ["kind", "verb"])
API_REQUESTS = Counter("shard_operator_api_requests_total",
                       "Requests of the controller to the API server", ["kind", "verb", "code"])
API_SECONDS = Histogram("shard_operator_api_request_duration_seconds",
                        "Time of one API request of the controller", ["kind", "verb"],
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))
SHARDS = Gauge("shard_operator_shards", "Shards per ShardSet by state",
               ["namespace", "shardset", "state"])
SHARDSET_CONDITION = Gauge("shard_operator_shardset_condition",
                           "A ShardSet's conditions: 1 for its status, 0 for the others",
                           ["namespace", "shardset", "type", "status"])
SHARDSET_RESTARTS = Gauge("shard_operator_shardset_restarts",
                          "Container restarts over the shards of a ShardSet",
                          ["namespace", "shardset"])
LEADER = Gauge("shard_operator_leader",
               "1 while this replica holds the leader Lease and may write, else 0")
FENCED_WRITES = Counter("shard_operator_fenced_writes_total",
                        "Writes refused because this replica does not hold a fresh lease",
                        ["kind", "verb"])
CONDITION_STATUSES = ("True", "False", "Unknown")


def record_status(namespace: str, shardset: str, status: dict[str, Any]) -> None:
    """Export the conditions and restarts of a ShardSet status the controller computed."""
    for cond in status.get("conditions") or []:
        for value in CONDITION_STATUSES:
            SHARDSET_CONDITION.labels(namespace, shardset, cond["type"], value).set(
                1 if cond.get("status") == value else 0)
    SHARDSET_RESTARTS.labels(namespace, shardset).set(status.get("restarts", 0))


def observe_request(kind: str, verb: str, code: str, seconds: float) -> None:
    """Count and time one API request; :class:`shard_operator.kube.Kube` calls this with
    the request's kind and verb (``Kube(api, record=observe_request)``)."""
    API_REQUESTS.labels(kind, verb, code).inc()
    API_SECONDS.labels(kind, verb).observe(seconds)
