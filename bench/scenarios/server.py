"""Scenario 7: the shard server on loopback. Cycles per second against a no-op aiohttp
server driven by the same client in the same run, and memory with 10,000 blocked readers.

A cycle is what the Ordering does for one transaction at height h: reserve(h),
write(h), advance-watermark(h), read(h + 1). The read needs the watermark (a read at
h + 1 waits while h + 1 > watermark + 1), so the cycle includes it. The no-op server
gets the same four POSTs.

- Sequential: cycles one after another. Each waits for three fdatasyncs in a row, so
  the figure is read against the ceiling they allow: a no-op cycle plus three appends +
  fdatasync measured on the same disk in the same run.
- Concurrent: 32 cycles in flight, at consecutive heights (reserves and writes at
  different heights at once); a cycle sends its advance-watermark(h) only once every
  height below h is written, so the watermark is advanced in order. Group commit
  shares each fdatasync among the changes that arrive meanwhile.

Both are also run against the same server code with its state in SQLite
(:mod:`bench.sqlite_server`: WAL, ``synchronous=FULL``) and, when ``BENCH_BEFORE`` names
an older source tree, against that tree's shard server.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from .. import stats
from ..context import progress
from ..proc import free_port, rss_mb

SERVER_BIN = Path(sys.executable).parent / "shard-server"
KEY = ["bench"]
HAVE_SHM = os.path.isdir("/dev/shm")
IN_FLIGHT = 32
SLICES = 5


class Server:
    def __init__(self, argv: list[str], env: dict[str, str], log: Path, port: int) -> None:
        self.port = port
        with open(log, "ab") as out:
            self.process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def ready(self, session: aiohttp.ClientSession, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("server exited")
            try:
                async with session.get(self.url + "/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        raise RuntimeError("server not ready")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def shard_server(workdir: Path, name: str, data_root: Path | None = None) -> Server:
    port = free_port()
    data = (data_root or workdir) / name
    data.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARD_")}
    env.update(SHARD_NODE_ID="bench", SHARD_KEY=json.dumps(KEY), SHARD_DATA_DIR=str(data),
               PYTHONUNBUFFERED="1")
    return Server([str(SERVER_BIN), "--host", "127.0.0.1", "--port", str(port)], env,
                  workdir / f"{name}.log", port)


def before_server(workdir: Path, name: str, tree: str) -> Server:
    """The shard server of an older source tree (``BENCH_BEFORE``), same settings."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARD_")}
    data = workdir / f"{name}-data"
    data.mkdir(parents=True, exist_ok=True)
    env.update(SHARD_NODE_ID="bench", SHARD_KEY=json.dumps(KEY), SHARD_DATA_DIR=str(data),
               PYTHONUNBUFFERED="1", PYTHONPATH=tree)
    return Server([sys.executable, "-m", "shard_operator.server", "--host", "127.0.0.1",
                   "--port", str(port)], env, workdir / f"{name}.log", port)


def sqlite_server(workdir: Path, name: str) -> Server:
    port = free_port()
    return Server([sys.executable, "-m", "bench.sqlite_server", str(port),
                   str(workdir / f"{name}-data")], dict(os.environ), workdir / f"{name}.log",
                  port)


def noop_server(workdir: Path, fsync_dir: Path | None = None) -> Server:
    """The no-op server; with ``fsync_dir``, plus an append + fdatasync per change."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.noop_server", str(port)]
    if fsync_dir is not None:
        argv.append(str(fsync_dir))
    name = "noop-fsync" if fsync_dir is not None else "noop"
    return Server(argv, dict(os.environ), workdir / f"{name}.log", port)


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Any:
    async with session.post(url, json=body) as response:
        payload = await response.json()
        if response.status != 200:
            raise RuntimeError(f"{url}: {response.status} {payload}")
        return payload


async def cycles(server: Server, seconds: float, start: int) -> tuple[int, float]:
    """Sequential reserve/write/advance-watermark/read cycles: how many, in how long."""
    done, height = 0, start
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        await server.ready(session)
        url = server.url
        begin = time.monotonic()
        deadline = begin + seconds
        while time.monotonic() < deadline:
            body = {"key": KEY, "height": height}
            await _post(session, url + "/v1/reserve", body)
            await _post(session, url + "/v1/write", {**body, "value": height})
            await _post(session, url + "/v1/advance-watermark", body)
            answer = await _post(session, url + "/v1/read",
                                 {"key": KEY, "height": height + 1, "timeoutSeconds": 30})
            if answer.get("result") == "ok" and "value" in answer \
                    and answer["value"] != height:
                raise RuntimeError(f"read at {height + 1} answered {answer}")
            height += 1
            done += 1
        return done, time.monotonic() - begin


async def concurrent_cycles(server: Server, seconds: float, start: int,
                            in_flight: int = IN_FLIGHT) -> tuple[int, float]:
    """Cycles with ``in_flight`` cycles at once, at consecutive heights (how many, in how
    long); a cycle advances the watermark to its height only once every lower height is
    written."""
    prefix: dict[int, asyncio.Event] = {}  # set: every height from start to h is written
    next_height, done = start, 0
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:
        await server.ready(session)
        url = server.url
        begin = time.monotonic()
        deadline = begin + seconds

        async def worker() -> None:
            nonlocal next_height, done
            while time.monotonic() < deadline:
                height, next_height = next_height, next_height + 1
                body = {"key": KEY, "height": height}
                await _post(session, url + "/v1/reserve", body)
                await _post(session, url + "/v1/write", {**body, "value": height})
                if height > start:  # the watermark in order: every lower height written
                    await prefix.setdefault(height - 1, asyncio.Event()).wait()
                    del prefix[height - 1]
                prefix.setdefault(height, asyncio.Event()).set()
                await _post(session, url + "/v1/advance-watermark", body)
                answer = await _post(session, url + "/v1/read",
                                     {"key": KEY, "height": height + 1, "timeoutSeconds": 30})
                if answer.get("result") == "ok" and "value" in answer \
                        and answer["value"] != height:
                    raise RuntimeError(f"read at {height + 1} answered {answer}")
                done += 1

        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return done, time.monotonic() - begin


def fsync_seconds(directory: Path, appends: int = 200) -> list[float]:
    """Times of one small append + fdatasync in ``directory``: what the server pays per
    durable commit on this disk, measured in the same run."""
    path = directory / f"fsync-probe-{os.getpid()}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o600)
    times = []
    try:
        for _ in range(appends):
            begin = time.perf_counter()
            os.write(fd, b"x" * 100 + b"\n")
            os.fdatasync(fd)
            times.append(time.perf_counter() - begin)
    finally:
        os.close(fd)
        path.unlink()
    return times


def preallocated_fsync_seconds(directory: Path, writes: int = 200) -> list[float]:
    """The same small write + fdatasync into a journal preallocated with zeros (written
    and synced beforehand), so that no write changes the file's size or block map: what
    a preallocated journal would pay per commit."""
    path = directory / f"fsync-probe-prealloc-{os.getpid()}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    times = []
    try:
        os.write(fd, bytes(writes * 101 + 4096))
        os.fsync(fd)
        offset = 0
        for _ in range(writes):
            begin = time.perf_counter()
            os.pwrite(fd, b"x" * 100 + b"\n", offset)
            os.fdatasync(fd)
            times.append(time.perf_counter() - begin)
            offset += 101
    finally:
        os.close(fd)
        path.unlink()
    return times


async def blocked_readers(server: Server, readers: int) -> dict[str, Any]:
    """Park ``readers`` reads behind a reserved, unwritten height above the watermark;
    RSS with them parked, then the time from the write (and watermark) until every one
    of them is answered."""
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await server.ready(session)
        idle = rss_mb(server.process.pid)[0]
        height = 10_000_000
        await _post(session, server.url + "/v1/reserve", {"key": KEY, "height": height})
        body = {"key": KEY, "height": height + 1, "timeoutSeconds": 300}
        tasks = [asyncio.create_task(_post(session, server.url + "/v1/read", body))
                 for _ in range(readers)]
        deadline = time.monotonic() + 180
        waiting = 0
        while time.monotonic() < deadline:
            async with session.get(server.url + "/v1/state") as response:
                state = await response.json()
            waiting = state["cells"][0]["waitingReaders"]
            if waiting >= readers:
                break
            await asyncio.sleep(0.5)
        rss, peak = rss_mb(server.process.pid)
        begin = time.monotonic()
        await _post(session, server.url + "/v1/write", {"key": KEY, "height": height,
                                                        "value": "released"})
        await _post(session, server.url + "/v1/advance-watermark",
                    {"key": KEY, "height": height})
        answers = await asyncio.gather(*tasks)
        release = time.monotonic() - begin
    return {"blocked_readers": waiting, "rss_mb_idle": idle, "rss_mb_with_readers": rss,
            "peak_mb": peak, "release_seconds": release,
            "answered": sum(1 for a in answers if a.get("value") == "released")}


async def run(workdir: Path, runs: int = 3, seconds: float = 5.0, readers: int = 10_000
              ) -> dict[str, Any]:
    os.makedirs(workdir, exist_ok=True)
    before = os.environ.get("BENCH_BEFORE", "")
    # Diagnostic: the same server with its data directory in RAM (/dev/shm), where fsync
    # costs nothing; the gap to the disk figure is what durability costs.
    shm = Path("/dev/shm")
    shm_name = f"shard-cycles-{os.getpid()}"
    servers = {"shard": shard_server(workdir, "shard-cycles"), "noop": noop_server(workdir),
               "noop_fsync": noop_server(workdir, workdir / "shard-cycles"),
               "sqlite": sqlite_server(workdir, "sqlite-cycles")}
    if HAVE_SHM:
        servers["ram"] = shard_server(workdir, shm_name, shm)
    if before:
        servers["before"] = before_server(workdir, "before-cycles", before)
    sequential: dict[str, list[float]] = {name: [] for name in servers}
    concurrent: dict[str, list[float]] = {name: [] for name in servers}
    ceilings, fsyncs, fsync_means, prealloc, of_ceiling = [], [], [], [], []
    measured_ceilings: list[float] = []
    of_formula_ceiling: list[float] = []
    try:
        for run_index in range(runs):
            base = 1 + run_index * 10_000_000
            # The machine is shared and its load moves within seconds: each system gets
            # SLICES slices of seconds / SLICES, taken in turn, and its rate is its cycles
            # over its time. A cycle makes three changes, each acknowledged after its own
            # fsync: with no other cost at all, the ratio could be at most the ceiling
            # below; the disk's fsync time is sampled around each slice of the shard
            # server and pooled.
            probe_dir = workdir / "shard-cycles"
            probe: list[float] = []
            for mode, rates in (("sequential", sequential), ("concurrent", concurrent)):
                totals = {name: [0, 0.0] for name in servers}
                for slice_index in range(SLICES):
                    start = base + (slice_index + (SLICES if mode == "concurrent" else 0)) \
                        * 100_000
                    for name, server in servers.items():
                        if mode == "sequential" and name == "shard":
                            probe += fsync_seconds(probe_dir, 50)
                        measure = cycles if mode == "sequential" else concurrent_cycles
                        done, elapsed = await measure(server, seconds / SLICES, start=start)
                        totals[name][0] += done
                        totals[name][1] += elapsed
                        if mode == "sequential" and name == "shard":
                            probe += fsync_seconds(probe_dir, 50)
                for name, (done, elapsed) in totals.items():
                    rates[name].append(done / elapsed)
            fsync = stats.percentile(probe, 50)
            fsync_means.append(statistics.fmean(probe) * 1000)
            prealloc.append(stats.percentile(preallocated_fsync_seconds(probe_dir), 50) * 1000)
            n = sequential["noop"][-1]
            ceiling = (1 / n) / (1 / n + 3 * fsync)
            fsyncs.append(fsync * 1000)
            ceilings.append(ceiling)
            s = sequential["shard"][-1]
            # the ceiling measured: the no-op cycle with its three fdatasyncs, paced by
            # the cycle's round trips (an fdatasync after an idle gap costs more than one
            # of the probe's back-to-back loop)
            measured_ceiling = sequential["noop_fsync"][-1] / n
            measured_ceilings.append(measured_ceiling)
            of_ceiling.append(s / sequential["noop_fsync"][-1])
            of_formula_ceiling.append(s / n / ceiling)
            line = ", ".join(f"{name} {rates[-1]:.0f}" for name, rates in sequential.items())
            line_c = ", ".join(f"{name} {rates[-1]:.0f}" for name, rates in concurrent.items())
            progress(f"    server run {run_index + 1}/{runs}: sequential cycles/s: {line}; "
                     f"ratio {s / n:.2f}, fsync p50 {fsync * 1000:.3f} ms (preallocated "
                     f"{prealloc[-1]:.3f} ms), ceiling measured {measured_ceiling:.2f} (formula "
                     f"{ceiling:.2f}), of the ceiling {of_ceiling[-1]:.2f} (of the formula's "
                     f"{of_formula_ceiling[-1]:.2f})")
            progress(f"    server run {run_index + 1}/{runs}: {IN_FLIGHT} in flight, "
                     f"cycles/s: {line_c}; ratio "
                     f"{concurrent['shard'][-1] / concurrent['noop'][-1]:.2f}")
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(shm / shm_name, ignore_errors=True)

    def vs_noop(rates: dict[str, list[float]], name: str) -> dict[str, Any] | None:
        return stats.summarize(stats.ratios(rates[name], rates["noop"])) \
            if name in rates else None

    result: dict[str, Any] = {
        "cycle": "reserve, write, advance-watermark, read (sequential)",
        "seconds_per_run": seconds,
        "cycles_per_second": stats.summarize(sequential["shard"]),
        "noop_cycles_per_second": stats.summarize(sequential["noop"]),
        "ram_data_dir_cycles_per_second": stats.summarize(sequential["ram"])
        if HAVE_SHM else None,
        "ram_data_dir_ratio": vs_noop(sequential, "ram"),
        "ratio": vs_noop(sequential, "shard"),
        "fsync_ms_p50": stats.summarize(fsyncs),
        "fsync_ms_mean": stats.summarize(fsync_means),
        "preallocated_fsync_ms_p50": stats.summarize(prealloc),
        "durable_ceiling_ratio": stats.summarize(ceilings),
        "measured_ceiling_ratio": stats.summarize(measured_ceilings),
        "ratio_of_ceiling": stats.summarize(of_ceiling),
        "ratio_of_formula_ceiling": stats.summarize(of_formula_ceiling),
        "sqlite_cycles_per_second": stats.summarize(sequential["sqlite"]),
        "sqlite_ratio": vs_noop(sequential, "sqlite"),
        "sqlite_vs_shard": stats.summarize(stats.ratios(sequential["sqlite"],
                                                        sequential["shard"])),
        "concurrent": {
            "in_flight": IN_FLIGHT,
            "cycle": f"the same cycle, {IN_FLIGHT} at once at consecutive heights, "
                     "advance-watermark(h) sent once every height below h is written",
            "cycles_per_second": {name: stats.summarize(rates)
                                  for name, rates in concurrent.items()},
            "ratio": vs_noop(concurrent, "shard"),
            "ram_data_dir_ratio": vs_noop(concurrent, "ram"),
            "sqlite_ratio": vs_noop(concurrent, "sqlite"),
            "sqlite_vs_shard": stats.summarize(stats.ratios(concurrent["sqlite"],
                                                            concurrent["shard"])),
        },
    }
    if before:
        result["before"] = {
            "tree": before,
            "cycles_per_second": stats.summarize(sequential["before"]),
            "ratio": vs_noop(sequential, "before"),
            "ratio_of_ceiling": stats.summarize(stats.ratios(sequential["before"],
                                                             sequential["noop_fsync"])),
            "ratio_of_formula_ceiling": stats.summarize(
                [r / c for r, c in zip(stats.ratios(sequential["before"], sequential["noop"]),
                                       ceilings, strict=False)]),
            "concurrent_cycles_per_second": stats.summarize(concurrent["before"]),
            "concurrent_ratio": vs_noop(concurrent, "before"),
        }
    blocked = shard_server(workdir, "shard-readers")
    try:
        result.update(await blocked_readers(blocked, readers))
    finally:
        blocked.stop()
    return result
