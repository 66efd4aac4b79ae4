"""Fault-suite fixtures: the operator fixtures of tests/operator, and an operator process
that can be pointed at a private cluster."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.operator.conftest import (  # noqa: F401
    OPERATOR,
    REPO,
    STANDALONE,
    crds,
    kubectl,
    operator,
)


class Operator:
    """``shard-operator run`` as a subprocess, for any kubeconfig, restartable."""

    def __init__(self, namespace: str, log: Path, kubeconfig: Path | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        self.namespace, self.log, self.kubeconfig, self.extra = namespace, log, kubeconfig, extra
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([*OPERATOR, "-n", self.namespace, *STANDALONE,
                                             *self.extra],
                                            stdout=log, stderr=subprocess.STDOUT, env=env,
                                            cwd=REPO)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


# While the API server is down, a reconcile fails with one of these and is retried.
CONNECTION_ERRORS = ("aiohttp.client_exceptions.ClientConnectorError",
                     "aiohttp.client_exceptions.ServerDisconnectedError",
                     "aiohttp.client_exceptions.ClientOSError",
                     "ConnectionRefusedError", "ConnectionResetError")


def unexpected_errors(log: str) -> list[str]:
    """The final exception line of every traceback that is not a connection error."""
    found = []
    for block in log.split("Traceback (most recent call last):")[1:]:
        lines = [line for line in block.splitlines() if line and not line.startswith(" ")]
        final = next((line for line in lines if ": " in line and line.split(":")[0]
                      .replace(".", "").replace("_", "").isalnum()), "")
        if not final.startswith(CONNECTION_ERRORS):
            found.append(final or block[:300])
    return found
