"""Scenario 7: the shard server on loopback. Cycles per second against a no-op aiohttp
server driven by the same client in the same run, and memory with 10,000 blocked readers.

A cycle is what the Ordering does for one transaction at height h: reserve(h),
write(h), advance-watermark(h), read(h + 1). The read needs the watermark (a read at
h + 1 waits while h + 1 > watermark + 1), so the cycle includes it; cycles run one
after another, since heights are ordered. The no-op server gets the same four POSTs.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
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


def noop_server(workdir: Path) -> Server:
    port = free_port()
    return Server([sys.executable, "-m", "bench.noop_server", str(port)], dict(os.environ),
                  workdir / "noop.log", port)


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Any:
    async with session.post(url, json=body) as response:
        payload = await response.json()
        if response.status != 200:
            raise RuntimeError(f"{url}: {response.status} {payload}")
        return payload


async def cycles(server: Server, seconds: float, start: int) -> float:
    """Sequential reserve/write/advance-watermark/read cycles per second."""
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
        return done / (time.monotonic() - begin)


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
    shard_rates, noop_rates, memory_rates, ceilings, fsyncs = [], [], [], [], []
    os.makedirs(workdir, exist_ok=True)
    noop = noop_server(workdir)
    shard = shard_server(workdir, "shard-cycles")
    # Diagnostic: the same server with its data directory in RAM (/dev/shm), where fsync
    # costs nothing; the gap to the disk figure is what durability costs.
    shm = Path("/dev/shm")
    in_memory = shard_server(workdir, f"shard-cycles-{os.getpid()}", shm) \
        if HAVE_SHM else None
    try:
        for run_index in range(runs):
            s = await cycles(shard, seconds, start=1 + run_index * 10_000_000)
            n = await cycles(noop, seconds, start=1)
            m = await cycles(in_memory, seconds, start=1 + run_index * 10_000_000) \
                if in_memory else 0.0
            # A cycle makes three changes, each acknowledged after its own fsync: with no
            # other cost at all, the ratio could be at most this.
            fsync = stats.percentile(fsync_seconds(workdir / "shard-cycles"), 50)
            ceiling = (1 / n) / (1 / n + 3 * fsync)
            shard_rates.append(s)
            noop_rates.append(n)
            memory_rates.append(m)
            fsyncs.append(fsync * 1000)
            ceilings.append(ceiling)
            progress(f"    server run {run_index + 1}/{runs}: shard {s:.0f} cycles/s, "
                     f"no-op {n:.0f} cycles/s, ratio {s / n:.2f}; data in RAM {m:.0f}; "
                     f"fsync p50 {fsync * 1000:.2f} ms, so at most {ceiling:.2f}")
    finally:
        noop.stop()
        shard.stop()
        if in_memory:
            in_memory.stop()
            shutil.rmtree(shm / f"shard-cycles-{os.getpid()}", ignore_errors=True)
    result: dict[str, Any] = {
        "cycle": "reserve, write, advance-watermark, read (sequential)",
        "seconds_per_run": seconds,
        "cycles_per_second": stats.summarize(shard_rates),
        "noop_cycles_per_second": stats.summarize(noop_rates),
        "ram_data_dir_cycles_per_second": stats.summarize(memory_rates) if in_memory else None,
        "ram_data_dir_ratio": stats.summarize(stats.ratios(memory_rates, noop_rates))
        if in_memory else None,
        "ratio": stats.summarize(stats.ratios(shard_rates, noop_rates)),
        "fsync_ms_p50": stats.summarize(fsyncs),
        "durable_ceiling_ratio": stats.summarize(ceilings)}
    blocked = shard_server(workdir, "shard-readers")
    try:
        result.update(await blocked_readers(blocked, readers))
    finally:
        blocked.stop()
    return result
