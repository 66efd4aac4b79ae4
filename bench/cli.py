"""``python -m bench``: run the scenarios on a private local cluster and write
bench/results/{latest.json,summary.md,*.png}."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import traceback
from pathlib import Path
from typing import Any

from . import environment, plots, report, rollouts, stats
from .context import Context, progress
from .k8s import KubeHttp

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = ("server", "converge", "idle", "start_shard", "recovery", "rollout", "keymap")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: N=100 once, short windows, small samples")
    parser.add_argument("--sizes", default="100,1000,5000", help="N for cold converge")
    parser.add_argument("--runs", type=int, default=3, help="repetitions for N < 5000")
    parser.add_argument("--runs-large", type=int, default=1, help="repetitions for N >= 5000")
    parser.add_argument("--concurrencies", default="16,64,256",
                        help="raw-client concurrencies to try (best one is used)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--systems", default="operator,raw,statefulset",
                        help="which systems scenario 1 converges")
    parser.add_argument("--keymap-keys", type=int, default=10_000)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--start-calls", type=int, default=200)
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--server-runs", type=int, default=3,
                        help="repetitions of scenario 7 (shard server)")
    parser.add_argument("--server-seconds", type=float, default=5.0,
                        help="seconds per system and repetition in scenario 7")
    parser.add_argument("--rollout-size", type=int, default=None,
                        help="N of scenario 8 (rollout); 100 with --quick")
    parser.add_argument("--rollout-runs", type=int, default=1,
                        help="repetitions of scenario 8")
    parser.add_argument("--rollout-systems", default="operator,statefulset",
                        help="which systems scenario 8 rolls (the ratio needs both)")
    parser.add_argument("--rollout-budgets", default="1,10%",
                        help="the operator's maxUnavailable values in scenario 8, in order")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--logs", type=Path, default=None,
                        help="keep the operators' logs here (default: removed with the run)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other scenarios' figures of OUT/latest.json and replace "
                             "only those run now (their environment is recorded as well)")
    args = parser.parse_args(argv)
    if args.rollout_size is None:
        args.rollout_size = 100 if args.quick else 1000
    if args.quick:
        args.sizes, args.runs, args.runs_large, args.concurrencies = "100", 1, 1, "64"
        args.keymap_keys, args.idle_seconds, args.start_calls, args.readers = 300, 10.0, 20, 1000
        args.server_runs, args.server_seconds = 1, 2.0
    return args


def steady_size(sizes: list[int]) -> int:
    """The N the steady-state scenarios run at: 1,000 if measured, else the largest ≤ it."""
    return 1000 if 1000 in sizes else max([n for n in sizes if n <= 1000] or sizes)


async def run_server(args: argparse.Namespace, workdir: Path, results: dict[str, Any],
                     errors: dict[str, str]) -> None:
    """Scenario 7: loopback servers only, no cluster."""
    from .scenarios import server

    progress("scenario 7: shard server vs no-op aiohttp on loopback")
    try:
        results["server"] = await server.run(workdir / "server", runs=args.server_runs,
                                             seconds=args.server_seconds, readers=args.readers)
    except Exception as error:  # record it, keep measuring the rest
        errors["server"] = f"{type(error).__name__}: {error}"
        progress(f"!! server failed: {errors['server']}")
        traceback.print_exc()


async def run_without_cluster(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    await run_server(args, workdir, results, errors)
    if errors:
        results["errors"] = errors
    return results


def needs_cluster(scenarios: str) -> bool:
    """Every scenario but the shard server's (7) runs on a private cluster."""
    return bool(set(scenarios.split(",")) - {"server", ""})


async def run(args: argparse.Namespace, cluster: Any, workdir: Path) -> dict[str, Any]:
    from shard_operator.kube import Kube, load_config

    from .scenarios import converge, keymap10k

    wanted = set(args.scenarios.split(","))
    sizes = [int(n) for n in args.sizes.split(",") if n]
    concurrencies = [int(c) for c in args.concurrencies.split(",") if c]
    log_dir = args.logs or workdir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    api = KubeHttp(cluster.kubeconfig)
    kube = Kube(await load_config(pool_size=max(concurrencies) + 8))
    ctx = Context(cluster.kubeconfig, workdir, api, kube, cluster.kubectl, log_dir)
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}

    async def attempt(name: str, coro: Any) -> Any:
        try:
            return await coro
        except Exception as error:  # record it, keep measuring the rest
            errors[name] = f"{type(error).__name__}: {error}"
            progress(f"!! {name} failed: {errors[name]}")
            traceback.print_exc()
            return None

    try:
        if "server" in wanted:
            await run_server(args, workdir, results, errors)

        if "converge" in wanted:
            systems = set(args.systems.split(","))
            best = concurrencies[0]
            if len(concurrencies) > 1 and "raw" in systems:
                n = steady_size(sizes)
                sweep: dict[str, float] = {}
                for c in concurrencies:
                    progress(f"scenario 1: raw client sweep, N={n}, concurrency {c}")
                    value = await attempt(f"raw-sweep-{c}", converge.raw(ctx, n, c))
                    if value:
                        sweep[str(c)] = value["seconds"]
                        progress(f"    {value['seconds']:.1f} s")
                if sweep:
                    best = int(min(sweep, key=sweep.__getitem__))
                    results["raw_concurrency"] = {str(n): {"seconds": sweep, "best": best}}
            times: dict[str, dict[str, list[float]]] = {
                "operator": {}, "raw": {}, "statefulset": {}}
            # BENCH_BEFORE=<dir with shard_operator/>: also converge with that older tree.
            before = os.environ.get("BENCH_BEFORE", "")
            if before:
                times["operator_before"] = {}
            memory: dict[str, dict[str, list[float]]] = {}
            cpu: dict[str, dict[str, list[float]]] = {"operator": {}, "operator_before": {}}
            writes: dict[str, list[float]] = {}  # the operator's own count, per converge
            anatomy: dict[str, list[dict[str, float]]] = {}  # passes and API time, per run
            # Pod Ready -> key in the map, seconds per shard, pooled over the runs of an N.
            lags: dict[str, dict[str, list[float]]] = {"operator": {}, "operator_before": {}}
            for n in sizes:
                reps = args.runs if n < 5000 else args.runs_large
                for rep in range(reps):
                    keep = (n == steady_size(sizes) and rep == reps - 1
                            and wanted & {"idle", "start_shard", "recovery"})
                    progress(f"scenario 1: N={n} run {rep + 1}/{reps}: operator")
                    value = await attempt(f"operator-{n}-{rep}",
                                          converge.operator(ctx, n, keep=bool(keep)))
                    if value:
                        figures, live = value
                        times["operator"].setdefault(str(n), []).append(figures["seconds"])
                        cpu["operator"].setdefault(str(n), []).append(figures["cpu_seconds"])
                        writes.setdefault(str(n), []).append(figures["writes"])
                        anatomy.setdefault(str(n), []).append(figures["anatomy"])
                        lags["operator"].setdefault(str(n), []).extend(
                            figures["registration_lags"])
                        mem = memory.setdefault(str(n), {"peak": [], "steady": []})
                        mem["peak"].append(figures["peak_mb"])
                        mem["steady"].append(figures["steady_mb"])
                        progress(f"    {figures['seconds']:.1f} s, operator CPU "
                                 f"{figures['cpu_seconds']:.1f} s, peak RSS "
                                 f"{figures['peak_mb']:.0f} MB, registration lag "
                                 f"{_lag(figures['registration_lags'])}")
                        if live is not None:
                            await steady_scenarios(args, ctx, live, wanted, results, attempt)
                            await converge.finish(ctx, live)
                    if before:
                        progress(f"scenario 1: N={n} run {rep + 1}/{reps}: operator from "
                                 f"{before}")
                        value = await attempt(f"before-{n}-{rep}", converge.operator(
                            ctx, n, pythonpath=before))
                        if value:
                            times["operator_before"].setdefault(str(n), []).append(
                                value[0]["seconds"])
                            cpu["operator_before"].setdefault(str(n), []).append(
                                value[0]["cpu_seconds"])
                            lags["operator_before"].setdefault(str(n), []).extend(
                                value[0]["registration_lags"])
                            progress(f"    {value[0]['seconds']:.1f} s, operator CPU "
                                     f"{value[0]['cpu_seconds']:.1f} s, peak RSS "
                                     f"{value[0]['peak_mb']:.0f} MB, registration lag "
                                     f"{_lag(value[0]['registration_lags'])}")
                    if "raw" in systems:
                        progress(f"scenario 1: N={n} run {rep + 1}/{reps}: raw "
                                 f"(concurrency {best})")
                    value = await attempt(f"raw-{n}-{rep}", converge.raw(ctx, n, best)) \
                        if "raw" in systems else None
                    if value:
                        times["raw"].setdefault(str(n), []).append(value["seconds"])
                        progress(f"    {value['seconds']:.1f} s")
                    if "statefulset" in systems:
                        progress(f"scenario 1: N={n} run {rep + 1}/{reps}: StatefulSet")
                    value = await attempt(f"statefulset-{n}-{rep}",
                                          converge.statefulset(ctx, n)) \
                        if "statefulset" in systems else None
                    if value:
                        times["statefulset"].setdefault(str(n), []).append(value["seconds"])
                        progress(f"    {value['seconds']:.1f} s")
            results["converge"] = {system: {n: stats.summarize(v) for n, v in by_n.items()}
                                   for system, by_n in times.items()}
            results["converge_ratios"] = {
                str(n): {f"operator/{base}": stats.summarize(stats.ratios(
                    times["operator"].get(str(n), []), times[base].get(str(n), [])))
                    for base in ("raw", "statefulset", "operator_before") if base in times}
                for n in sizes}
            results["operator_cpu_seconds"] = {
                system: {n: stats.summarize(v) for n, v in by_n.items()}
                for system, by_n in cpu.items() if by_n}
            results["operator_writes_per_converge"] = {
                n: stats.summarize(v) for n, v in writes.items()}
            results["operator_anatomy"] = anatomy
            results["registration_lag"] = {
                n: stats.distribution(v) for n, v in lags["operator"].items()}
            if lags["operator_before"]:
                results["registration_lag_before"] = {
                    n: stats.distribution(v) for n, v in lags["operator_before"].items()}
            results["memory"] = {n: {"peak_mb": max(m["peak"]),
                                     "steady_mb": statistics.median(m["steady"])}
                                 for n, m in memory.items() if m["peak"]}

        if "rollout" in wanted:
            value = await attempt("rollout", run_rollout(args, ctx, attempt))
            if value:
                results["rollout"] = value

        if "keymap" in wanted:
            progress(f"scenario 6: one ShardSet of {args.keymap_keys:,} keys")
            value = await attempt("keymap", keymap10k.run(ctx, args.keymap_keys))
            if value:
                results["keymap"] = value
    finally:
        await api.close()
        await kube.close()
    if errors:
        results["errors"] = errors
    return results


def _lag(lags: list[float]) -> str:
    if not lags:
        return "not measured"
    d = stats.distribution(lags)
    return f"p50 {d['p50']:.2f} s, p99 {d['p99']:.2f} s, max {d['max']:.2f} s"


async def steady_scenarios(args: argparse.Namespace, ctx: Context, live: Any, wanted: set[str],
                           results: dict[str, Any], attempt: Any) -> None:
    from .scenarios import steady

    if "idle" in wanted:
        progress(f"scenario 2: idle cost over {args.idle_seconds:.0f} s at N={live.n}")
        value = await attempt("idle", steady.idle(ctx, live, args.idle_seconds))
        if value:
            results["idle"] = value
            progress(f"    {value['apiserver_writes']} writes (apiserver), "
                     f"{value['operator_writes']} (operator), CPU {value['cpu_percent']:.1f}%")
    if "recovery" in wanted:
        progress(f"scenario 5: delete 10% of the pods at N={live.n}")
        value = await attempt("recovery", steady.recovery(ctx, live))
        if value:
            results["recovery"] = value
            lat = value["latency"]
            progress(f"    p50 {lat['p50']:.2f} s, p99 {lat['p99']:.2f} s")

    if "start_shard" in wanted:
        progress(f"scenario 4: {args.start_calls} sequential start_shard at N={live.n}")
        value = await attempt("start_shard", steady.start_shard(ctx, live, args.start_calls))
        if value:
            results["start_shard"] = value
            lat = value["latency"]
            progress(f"    p50 {lat['p50']:.3f} s, p99 {lat['p99']:.3f} s")

async def run_rollout(args: argparse.Namespace, ctx: Context, attempt: Any) -> dict[str, Any]:
    """Scenario 8: per repetition, the operator's two rollouts, then the StatefulSet's."""
    from .scenarios import rollout

    n, systems = args.rollout_size, set(args.rollout_systems.split(","))
    budgets = [int(b) if b.isdigit() else b for b in args.rollout_budgets.split(",")]
    runs: list[dict[str, Any]] = []
    for rep in range(args.rollout_runs):
        figures: dict[str, Any] = {}
        if "operator" in systems:
            progress(f"scenario 8: N={n} run {rep + 1}/{args.rollout_runs}: operator")
            figures.update(await attempt(f"rollout-operator-{rep}",
                                         rollout.operator(
                                             ctx, n, budgets=budgets)) or {})
        before = os.environ.get("BENCH_BEFORE", "")
        if before:  # an older source tree's operator, in the same run
            progress(f"scenario 8: N={n} run {rep + 1}/{args.rollout_runs}: operator from "
                     f"{before}")
            figures.update(await attempt(f"rollout-before-{rep}", rollout.operator(
                ctx, n, pythonpath=before, name="before", budgets=budgets)) or {})
        if "statefulset" in systems:
            progress(f"scenario 8: N={n} run {rep + 1}/{args.rollout_runs}: StatefulSet")
            figures.update(await attempt(f"rollout-statefulset-{rep}",
                                         rollout.statefulset(ctx, n)) or {})
        runs.append(figures)
    return rollouts.summarize(n, runs)


def kubernetes_version(cluster: Any) -> str:
    try:
        out = cluster.kubectl("version", "-o", "json").stdout
        return json.loads(out)["serverVersion"]["gitVersion"]
    except Exception:  # the version is informative only
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    with tempfile.TemporaryDirectory(prefix="shard-bench-") as tmp:
        workdir = Path(tmp)
        if needs_cluster(args.scenarios):
            env, results = run_on_cluster(args, workdir)
        else:  # `--scenarios server`: loopback only, no cluster to start
            env = environment.describe("none (no cluster: scenario 7 only)")
            results = asyncio.run(run_without_cluster(args, workdir))
    if args.merge and (args.out / "latest.json").exists():
        previous = json.loads((args.out / "latest.json").read_text())
        rerun = args.scenarios.split(",")
        merged = {**previous["results"], **results}
        errors = {k: v for k, v in (previous["results"].get("errors") or {}).items()
                  if not any(k.startswith(name) for name in rerun)}
        errors.update(results.get("errors") or {})
        merged.pop("errors", None)
        if errors:
            merged["errors"] = errors
        env = {**previous["environment"], "merged_runs": [
            *previous["environment"].get("merged_runs", []),
            {"scenarios": args.scenarios, **env}]}
        config = previous["config"]
        results = merged
    doc = report.document(results, env, config)
    args.out.mkdir(parents=True, exist_ok=True)
    doc["plots"] = plots.write_all(results, args.out)
    report.write(doc, args.out)
    progress(f"wrote {args.out / 'latest.json'}, summary.md and {', '.join(doc['plots'])}")
    print(report.markdown(doc))


def run_on_cluster(args: argparse.Namespace, workdir: Path
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The environment and results of the scenarios, on a private local cluster."""
    from localcluster import LocalCluster

    progress(f"starting a private local cluster in {workdir / 'cluster'}")
    cluster = LocalCluster(workdir / "cluster")
    cluster.up()
    try:
        os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f",
                        str(REPO / "crds"))
        cluster.kubectl("wait", "--for=condition=Established",
                        "crd/shardsets.shards.anoma.net", "crd/shards.shards.anoma.net",
                        "--timeout=60s")
        env = environment.describe(kubernetes_version(cluster))
        results = asyncio.run(run(args, cluster, workdir))
    finally:
        from .proc import Operator

        Operator.stop_all()
        progress("tearing the private cluster down")
        cluster.down()
    return env, results
