"""The bench's pure parts: statistics, target evaluation, rendering. No cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import report, stats
from bench.k8s import delta, parse_metrics, write_counts
from bench.targets import REGISTRATION_LAG, evaluate


def test_percentiles_interpolate_between_ranks():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert stats.percentile(values, 50) == 3.0
    assert stats.percentile(values, 0) == 1.0
    assert stats.percentile(values, 100) == 5.0
    assert stats.percentile(values, 25) == 2.0
    assert stats.percentile([10.0, 20.0], 99) == pytest.approx(19.9)
    assert stats.percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        stats.percentile([], 50)


def test_summary_gives_median_and_spread():
    summary = stats.summarize([3.0, 1.0, 2.0])
    assert summary == {"runs": 3, "median": 2.0, "min": 1.0, "max": 3.0, "spread": 2.0,
                       "values": [3.0, 1.0, 2.0]}
    assert stats.summarize([])["median"] is None


def test_ratios_pair_measurements_of_the_same_run():
    assert stats.ratios([2.0, 6.0], [1.0, 3.0]) == [2.0, 2.0]
    assert stats.ratios([2.0], [0.0]) == []


def results(op_raw: float, op_sts: float, p99: float) -> dict:
    return {
        "converge_ratios": {"1000": {"operator/raw": stats.summarize([op_raw]),
                                     "operator/statefulset": stats.summarize([op_sts])}},
        "idle": {"apiserver_writes": 0, "operator_writes": 0, "cpu_percent": 0.1,
                 "by_resource": {}},
        "memory": {"5000": {"peak_mb": 150.0 if op_raw > 1.1 else 110.0, "steady_mb": 100.0}},
        "start_shard": {"latency": stats.distribution([0.1] * 98 + [p99] * 2),
                        "samples": [0.1] * 98 + [p99] * 2},
        "recovery": {"deleted": 100, "latency": stats.distribution([1.0, 2.0]),
                     "all_back_seconds": 2.0},
        "keymap": {"keys": 10000, "converged": True, "object_bytes": 700_000,
                   "limit_bytes": 1048576, "watcher_sync_seconds": 0.5,
                   "lookup_us": stats.distribution([1.0, 2.0]), "operator_peak_mb": 150.0},
        "server": {"ratio": stats.summarize([0.6])},
    }


def test_targets_met_and_missed():
    by_figure = {t.figure: t for t in evaluate(results(1.05, 0.9, 0.5))}
    assert all(t.met for t in by_figure.values()), by_figure
    missed = {t.figure: t for t in evaluate(results(1.3, 1.1, 1.5))}
    assert not missed["N=1000 operator / raw (median of per-run ratios)"].met
    assert not missed["converge operator/raw, N = 1,000"].met
    assert not missed["N=1000 operator / StatefulSet (median of per-run ratios)"].met
    assert not missed["p99 until visible in a KeyMapWatcher (s)"].met
    assert missed["operator peak RSS at N=5000 (MB)"].met
    assert not missed["operator peak RSS, N = 5,000"].met  # issue #17 raised it to 120 MB


def test_issue_17_converge_targets_at_each_size():
    data = {"converge_ratios": {
        "100": {"operator/raw": stats.summarize([1.08])},
        "5000": {"operator/raw": stats.summarize([1.2])}},
        "registration_lag": {"5000": stats.distribution([0.1] * 98 + [2.5] * 2),
                             "100": stats.distribution([9.0])}}
    by_figure = {t.figure: t for t in evaluate(data)}
    assert by_figure["converge operator/raw, N = 100"].met
    assert not by_figure["converge operator/raw, N = 5,000"].met
    lag = by_figure[REGISTRATION_LAG]
    assert not lag.met and lag.target == "<= 2 s"
    assert REGISTRATION_LAG not in {
        t.figure for t in evaluate({"registration_lag": {"1000": stats.distribution([1.0])}})}


def test_registration_lag_from_pod_ready_to_key_listed():
    from bench.k8s import PodTracker
    from bench.scenarios.converge import KeyMapTracker, registration_lags

    pods, keys = PodTracker(), KeyMapTracker()
    pods.ready = {"a": "uid-a", "b": "uid-b", "c": "uid-c"}
    pods.ready_at = {"uid-a": 10.0, "uid-b": 12.0, "uid-c": 11.0}
    keys.first_seen = {"a": 10.5, "b": 11.0}  # b listed before its pod was Ready; c never
    assert sorted(registration_lags(pods, keys)) == [0.0, 0.5]


def test_key_map_tracker_remembers_when_each_entry_first_appeared():
    from bench.scenarios.converge import KeyMapTracker

    keys = KeyMapTracker()
    header = {"format": "f", "nodeId": "n", "serviceDomain": "d", "port": "8080"}
    keys.on_event("ADDED", {"data": {**header, "a": "[]"}})
    first = keys.first_seen["a"]
    keys.on_event("MODIFIED", {"data": {**header, "a": "[]", "b": "[]"}})
    assert keys.first_seen["a"] == first and set(keys.first_seen) == {"a", "b"}
    assert keys.count == 2


def test_targets_only_for_scenarios_that_ran():
    assert evaluate({}) == []
    only_server = evaluate({"server": {"ratio": stats.summarize([0.4])}})
    assert [(t.scenario, t.met) for t in only_server] == [("7 shard server", False)]


def test_shard_server_targets_of_issue_17():
    server = {"ratio": stats.summarize([0.6]), "ratio_of_ceiling": stats.summarize([0.92]),
              "concurrent": {"ratio": stats.summarize([0.7])}}
    by_figure = {t.figure: t for t in evaluate({"server": server})}
    assert by_figure["shard server sequential cycles / the ceiling (no-op cycle + 3 "
                     "fdatasyncs, same run)"].met
    assert not by_figure["shard server with 32 transactions in flight / no-op server at "
                         "the same concurrency"].met


def test_document_and_markdown(tmp_path: Path):
    data = results(1.2, 0.9, 0.5)
    data["converge"] = {"operator": {"1000": stats.summarize([10.0, 12.0])},
                        "raw": {"1000": stats.summarize([9.0])},
                        "statefulset": {"1000": stats.summarize([11.0])}}
    env = {"started": "now", "python": "3.11", "kopf": "1.45.2", "kubernetes": "v1.33",
           "machine": {"cores": 2, "cpu_model": "cpu", "memory_gb": 24.0}}
    doc = report.document(data, env, {"runs": 3})
    assert {"environment", "config", "results", "targets"} <= set(doc)
    assert all(set(t) == {"scenario", "figure", "value", "target", "met"}
               for t in doc["targets"])
    report.write(doc, tmp_path)
    loaded = json.loads((tmp_path / "latest.json").read_text())
    assert loaded["targets"] == doc["targets"]
    text = (tmp_path / "summary.md").read_text()
    assert "| 1000 | 11.00 (10.00-12.00, 2 runs) | 9.00 (1 run) | 11.00 (1 run) |" in text
    assert "| 4 start_shard | p99 until visible in a KeyMapWatcher (s) | 0.500 | <= 1 s | ✅ |" \
        in text


def _sample(resource: str, subresource: str, verb: str, value: int) -> str:
    return (f'apiserver_request_total{{code="200",component="apiserver",dry_run="",'
            f'group="",resource="{resource}",scope="resource",subresource="{subresource}",'
            f'verb="{verb}",version="v1"}} {value}')


METRICS = "\n".join([
    "# TYPE apiserver_request_total counter",
    _sample("pods", "", "POST", 10),
    _sample("pods", "status", "PATCH", 99),  # kwok
    _sample("shards", "status", "PATCH", 4),
    _sample("leases", "", "PUT", 50),  # kwok, kcm, scheduler
    _sample("pods", "", "LIST", 7),
]) + "\n"


def test_write_counts_keep_the_operators_resources_only():
    labels, value = parse_metrics(METRICS, "apiserver_request_total")[0]
    assert labels["verb"] == "POST" and value == 10
    counts = write_counts(METRICS)
    assert counts == {"pods": 10.0, "shards/status": 4.0}
    later = {"pods": 12.0, "shards/status": 4.0}
    assert delta(later, counts) == {"pods": 2.0}


def test_rss_target_at_10k_keys_only_when_the_run_had_10k():
    keymap = {"keys": 10_000, "converged": True, "operator_peak_mb": 170.0}
    by_figure = {t.figure: t for t in evaluate({"keymap": keymap})}
    assert not by_figure["operator peak RSS, 10,000 keys"].met
    assert by_figure["operator peak RSS, 10,000 keys"].target == "<= 160 MB"
    smaller = {t.figure for t in evaluate({"keymap": {**keymap, "keys": 500}})}
    assert "operator peak RSS, 10,000 keys" not in smaller


class FlakyKube:
    """Answers each create with the errors given, in order, then succeeds."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors, self.calls = list(errors), 0

    async def create(self, body: dict) -> dict:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return body


async def test_raw_baseline_retries_what_the_operator_would_retry(monkeypatch) -> None:
    from bench.scenarios import converge
    from shard_operator.kube import ApiError

    monkeypatch.setattr(converge.asyncio, "sleep", _no_sleep)
    body = {"kind": "Service", "metadata": {"name": "s"}}
    timeout = ApiError(504, "Timeout", "request did not complete within requested timeout")
    exists = ApiError(409, "AlreadyExists", "exists")
    kube, retried = FlakyKube(timeout, exists), []
    await converge.create_retrying(kube, body, retried)  # the 504'd create had landed
    assert kube.calls == 2 and len(retried) == 1 and "504" in retried[0]
    with pytest.raises(ApiError):  # invalid: not retried
        await converge.create_retrying(FlakyKube(ApiError(422, "Invalid", "bad")), body, [])
    with pytest.raises(ApiError):  # a conflict on the first attempt is someone else's
        await converge.create_retrying(FlakyKube(exists), body, [])
    with pytest.raises(ApiError):  # and the attempts are bounded
        await converge.create_retrying(FlakyKube(*[timeout] * 9), body, [], attempts=3)


async def _no_sleep(seconds: float) -> None:
    return None
