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
  status class (2xx, 4xx, 5xx) or ``error`` when no response came back.

``shard_operator_shards{namespace,shardset,state}`` gives desired, registered and
ready shards per ShardSet.
"""

from __future__ import annotations

import functools
import re
import time
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

_PLURAL_KINDS = {"shardsets": "ShardSet", "shards": "Shard"}
_CORE_KINDS = {"pod": "Pod", "service": "Service", "config_map": "ConfigMap",
               "event": "Event"}
_METHOD = re.compile(r"^(?P<verb>[a-z]+)_namespaced_(?P<what>[a-z_]+?)(?P<status>_status)?$")


def request_labels(method_name: str, args: tuple[Any, ...]) -> tuple[str, str]:
    """(kind, verb) of a kubernetes_asyncio API method called with ``args``."""
    match = _METHOD.match(method_name)
    if match is None:
        return "other", method_name
    verb = match["verb"] + ("-status" if match["status"] else "")
    what = match["what"]
    if what == "custom_object":
        # (group, version, namespace, plural, ...)
        kind = _PLURAL_KINDS.get(str(args[3]) if len(args) > 3 else "", "custom")
    else:
        kind = _CORE_KINDS.get(what, what)
    return kind, verb


def instrument(kube_class: type) -> None:
    """Count and time every request that goes through ``kube_class._call`` (idempotent)."""
    original = kube_class._call
    if getattr(original, "_instrumented", False):
        return

    @functools.wraps(original)
    async def _call(self: Any, method: Any, *args: Any, **kwargs: Any) -> Any:
        kind, verb = request_labels(getattr(method, "__name__", "other"), args)
        started = time.monotonic()
        code = "error"
        try:
            result = await original(self, method, *args, **kwargs)
            code = "2xx"
            return result
        except Exception as error:
            status = getattr(error, "status", 0) or 0
            code = f"{status // 100}xx" if status else "error"
            raise
        finally:
            API_REQUESTS.labels(kind, verb, code).inc()
            API_SECONDS.labels(kind, verb).observe(time.monotonic() - started)

    _call._instrumented = True  # type: ignore[attr-defined]
    kube_class._call = _call
