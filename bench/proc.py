"""The operator under test as a subprocess, with its RSS, peak RSS and CPU time."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import ClassVar

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS = VmHWM) in MB, from /proc/PID/status."""
    values = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, amount = line.split(":", 1)
                values[key] = int(amount.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of the process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Operator:
    """``python -m shard_operator.cli.operator run -n NS --metrics-port P``."""

    running: ClassVar[set[Operator]] = set()  # stopped by stop_all() if the bench is interrupted

    def __init__(self, namespace: str, kubeconfig: Path, log: Path,
                 extra_env: dict[str, str] | None = None) -> None:
        self.namespace, self.kubeconfig, self.log = namespace, kubeconfig, log
        self.metrics_port = free_port()
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1",
               **self.extra_env}
        with open(self.log, "ab") as log:
            # BENCH_PROFILE=DIR runs the operator under pyinstrument (a text profile per run).
            profile = os.environ.get("BENCH_PROFILE")
            wrapper = [sys.executable, "-m", "pyinstrument", "-r", "text", "--show-all", "-o",
                       str(Path(profile) / f"operator-{self.namespace}.txt"), "-m"] \
                if profile else [sys.executable, "-m"]
            self.process = subprocess.Popen(
                [*wrapper, "shard_operator.cli.operator", "run", "-n",
                 self.namespace, "--metrics-port", str(self.metrics_port),
                 "--no-leader-election"],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        Operator.running.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"operator exited: {self.log.read_text()[-3000:]}")
            try:
                self.metrics()
                break
            except OSError:
                time.sleep(0.2)
        # Let kopf finish its initial listings (of an empty namespace) before timing.
        time.sleep(2.0)

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()

    def writes(self) -> float:
        """The operator's own count of its API writes (shard_operator_api_writes_total)."""
        total = 0.0
        for line in self.metrics().splitlines():
            if line.startswith("shard_operator_api_writes_total{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    @classmethod
    def stop_all(cls) -> None:
        for operator in list(cls.running):
            operator.stop()

    def anatomy(self) -> dict[str, float]:
        """Reconcile passes and API requests so far, from the operator's own metrics:
        passes, failed passes, seconds in passes, and requests / seconds by kind+verb."""
        out: dict[str, float] = {}
        for line in self.metrics().splitlines():
            if line.startswith("#") or " " not in line:
                continue
            name, value = line.rsplit(" ", 1)
            metric = name.split("{", 1)[0]
            if metric in ("shard_operator_reconciles_total",
                          "shard_operator_reconcile_errors_total",
                          "shard_operator_reconcile_duration_seconds_sum"):
                out[metric.removeprefix("shard_operator_")] = float(value)
            elif metric in ("shard_operator_api_request_duration_seconds_count",
                            "shard_operator_api_request_duration_seconds_sum"):
                labels = dict(part.split("=", 1) for part in
                              name.split("{", 1)[1].rstrip("}").split(","))
                what = f"{labels['kind'].strip(chr(34))} {labels['verb'].strip(chr(34))}"
                suffix = "requests" if metric.endswith("_count") else "seconds"
                out[f"{what} {suffix}"] = out.get(f"{what} {suffix}", 0.0) + float(value)
        return out

    def stop(self) -> None:
        Operator.running.discard(self)
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
