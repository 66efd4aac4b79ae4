"""Fixtures for the shard server tests: real ``shard-server`` processes on 127.0.0.1.

Every process listens on 127.0.0.1 only, on a free port, with its own data directory,
and is killed when the test (or module) ends.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.shard_http import HOST, ShardHTTP

SERVER_BIN = Path(sys.executable).parent / "shard-server"
START_TIMEOUT = 30.0  # hang guard only: a server normally starts in well under a second
_NO_VALUE = object()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class ServerProcess(ShardHTTP):
    """One ``shard-server`` process (restartable on the same data directory)."""

    def __init__(
        self,
        *,
        key: Sequence[str],
        data_dir: Path,
        log_dir: Path,
        initial: Any = _NO_VALUE,
        node_id: str = "test-node",
        encoding: str | None = None,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.key = list(key)
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.initial = initial
        self.node_id = node_id
        self.encoding = encoding
        self.args = list(args)
        self.extra_env = env or {}
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self._starts = 0

    # -- lifecycle -----------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHARD_")}
        env.update(
            SHARD_NODE_ID=self.node_id,
            SHARD_KEY=json.dumps(self.key),
            SHARD_DATA_DIR=str(self.data_dir),
            PYTHONUNBUFFERED="1",
        )
        if self.encoding is not None:
            env["SHARD_KEY_ENCODING"] = self.encoding
        if self.initial is not _NO_VALUE:
            env["SHARD_INITIAL_VALUE"] = json.dumps(self.initial)
        env.update(self.extra_env)
        return env

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process without waiting for readiness."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        assert SERVER_BIN.exists(), f"console script {SERVER_BIN} is not installed"
        self._starts += 1
        self.port = free_port()
        self.log_path = self.log_dir / f"shard-server-{self.port}-{self._starts}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(SERVER_BIN), "--host", HOST, "--port", str(self.port), *self.args],
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self.proc

    def start(self) -> ServerProcess:
        self.spawn()
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"shard-server exited with {self.proc.returncode}:\n{self.log_text()}"
                )
            try:
                status, _ = self.request("GET", "/readyz", timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"shard-server not ready in {START_TIMEOUT}s:\n{self.log_text()}")

    def run_to_exit(self, timeout: float = START_TIMEOUT) -> int:
        """Start and expect the process to exit by itself (e.g. refusing to start)."""
        proc = self.spawn()
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"shard-server did not exit:\n{self.log_text()}") from None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def terminate(self) -> int:
        """SIGTERM and wait for a clean exit; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("shard-server ignored SIGTERM") from None

    def restart(self) -> ServerProcess:
        self.kill()
        return self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

class ServerPool:
    """Starts servers and kills them all at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.servers: list[ServerProcess] = []

    def make(
        self, key: Sequence[str] = ("a",), *, data_dir: Path | None = None, **kwargs: Any
    ) -> ServerProcess:
        index = len(self.servers)
        if data_dir is None:
            data_dir = self.root / f"data-{index}"
        server = ServerProcess(key=key, data_dir=data_dir, log_dir=self.root, **kwargs)
        self.servers.append(server)
        return server

    def start(self, key: Sequence[str] = ("a",), **kwargs: Any) -> ServerProcess:
        return self.make(key, **kwargs).start()

    def close(self) -> None:
        for server in self.servers:
            server.kill()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[ServerPool]:
    pool = ServerPool(tmp_path)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="module")
def module_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    pool = ServerPool(tmp_path_factory.mktemp("shard-servers"))
    try:
        yield pool
    finally:
        pool.close()
