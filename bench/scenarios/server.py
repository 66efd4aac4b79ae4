"""Scenario 7: the shard server on loopback. reserve + write + read cycles per second
against a no-op aiohttp server driven by the same client in the same run, and memory
with 10,000 blocked readers."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
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


def shard_server(workdir: Path, name: str) -> Server:
    port = free_port()
    data = workdir / name
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


async def cycles(server: Server, seconds: float, concurrency: int, start: int) -> float:
    """reserve(h) + write(h) + read(h) cycles per second, ``concurrency`` clients, each on
    its own heights."""
    heights = itertools.count(start)
    done = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await server.ready(session)
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                h = next(heights)
                body = {"key": KEY, "height": h}
                await _post(session, server.url + "/v1/reserve", body)
                await _post(session, server.url + "/v1/write", {**body, "value": h})
                await _post(session, server.url + "/v1/read", {**body, "timeoutSeconds": 30})
                done += 1

        begin = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.monotonic() - begin)


async def blocked_readers(server: Server, readers: int) -> dict[str, Any]:
    """Park ``readers`` reads behind a reserved, unwritten height; RSS with them parked,
    then the time from the write until every one of them is answered."""
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
        answers = await asyncio.gather(*tasks)
        release = time.monotonic() - begin
    return {"blocked_readers": waiting, "rss_mb_idle": idle, "rss_mb_with_readers": rss,
            "peak_mb": peak, "release_seconds": release,
            "answered": sum(1 for a in answers if a.get("value") == "released")}


async def run(workdir: Path, runs: int = 3, seconds: float = 5.0, concurrency: int = 16,
              readers: int = 10_000) -> dict[str, Any]:
    shard_rates, noop_rates = [], []
    os.makedirs(workdir, exist_ok=True)
    noop = noop_server(workdir)
    shard = shard_server(workdir, "shard-cycles")
    try:
        for run_index in range(runs):
            s = await cycles(shard, seconds, concurrency, start=1 + run_index * 10_000_000)
            n = await cycles(noop, seconds, concurrency, start=1)
            shard_rates.append(s)
            noop_rates.append(n)
            progress(f"    server run {run_index + 1}/{runs}: shard {s:.0f} cycles/s, "
                     f"no-op {n:.0f} cycles/s, ratio {s / n:.2f}")
    finally:
        noop.stop()
        shard.stop()
    result: dict[str, Any] = {
        "concurrency": concurrency, "seconds_per_run": seconds,
        "cycles_per_second": stats.summarize(shard_rates),
        "noop_cycles_per_second": stats.summarize(noop_rates),
        "ratio": stats.summarize(stats.ratios(shard_rates, noop_rates))}
    blocked = shard_server(workdir, "shard-readers")
    try:
        result.update(await blocked_readers(blocked, readers))
    finally:
        blocked.stop()
    return result
