"""Helpers for tests on the local cluster's real node (containerd + kubelet).

Pods there are reached only through ``kubectl port-forward`` and ``kubectl exec``, both
over 127.0.0.1; nothing here connects to a pod address.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from localcluster import LocalCluster
from localcluster.node import NODE_LABEL, TAINT_KEY
from tests.conftest import wait_for
from tests.shard_http import ShardHTTP

# A ShardSet template that puts its shards on the real node, default image and probes.
REAL_NODE_TEMPLATE: dict[str, Any] = {"spec": {
    "nodeSelector": {NODE_LABEL: "true"},
    "tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
}}
FORWARD_START = 30.0  # hang guard for kubectl port-forward to print its port


def require_real_node(cluster: LocalCluster) -> str:
    """The real node's name; fails under CI and skips elsewhere when there is none."""
    node = cluster.real_node
    if node.get("enabled"):
        return node["name"]
    reason = "; ".join(node.get("missing", [])) or "SHARD_OPERATOR_REAL_NODE=off"
    message = f"the local cluster has no real node ({reason})"
    if os.environ.get("CI", "").lower() in ("1", "true"):
        pytest.fail(message + ": required under CI")
    pytest.skip(message + "; the tests of running containers need it")


def real_node_template(**pod_spec: Any) -> dict[str, Any]:
    """``REAL_NODE_TEMPLATE`` with more top-level pod spec fields."""
    return {"spec": {**REAL_NODE_TEMPLATE["spec"], **pod_spec}}


class PortForward(ShardHTTP):
    """``kubectl port-forward pod/NAME :REMOTE`` on 127.0.0.1, restarted if it exits
    (kubectl ends a forward when the pod side refuses a connection)."""

    def __init__(self, cluster: LocalCluster, namespace: str, pod: str, remote: int = 8080
                 ) -> None:
        self.cluster, self.namespace, self.pod, self.remote = cluster, namespace, pod, remote
        self.proc: subprocess.Popen[str] | None = None
        self._port = 0

    @property  # type: ignore[override]
    def port(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        return self._port

    def _start(self) -> None:
        # kubectl prints a line per connection: to a file, so that it never blocks on a
        # full pipe (a pipe nobody drains stalls every forwarded connection).
        self.log = tempfile.NamedTemporaryFile(prefix="port-forward-", suffix=".log")
        self.proc = subprocess.Popen(
            ["kubectl", f"--kubeconfig={self.cluster.kubeconfig}", "-n", self.namespace,
             "port-forward", "--address=127.0.0.1", f"pod/{self.pod}", f":{self.remote}"],
            stdout=self.log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + FORWARD_START
        while time.monotonic() < deadline and self.proc.poll() is None:
            match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)",
                              Path(self.log.name).read_text(errors="replace"))
            if match:
                self._port = int(match.group(1))
                return
            time.sleep(0.05)
        output = Path(self.log.name).read_text(errors="replace")
        self.close()
        raise AssertionError(f"port-forward to {self.pod} did not start: {output}")

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class PodShard(PortForward):
    """A shard server in a pod the operator made, with the kubelet as its supervisor."""

    def pod_json(self) -> dict[str, Any]:
        return json.loads(self.cluster.kubectl(
            "-n", self.namespace, "get", "pod", self.pod, "-o", "json").stdout)

    def container_status(self) -> dict[str, Any]:
        statuses = self.pod_json().get("status", {}).get("containerStatuses") or [{}]
        return statuses[0]

    def restart_count(self) -> int:
        return int(self.container_status().get("restartCount", 0))

    def host_pid(self) -> int:
        """The server's pid on this machine, from runc's state of its container."""
        container_id = self.container_status()["containerID"].split("://", 1)[1]
        runc_root = self.cluster.node.runc_root / "k8s.io"
        state = subprocess.run(["runc", f"--root={runc_root}", "state", container_id],
                               capture_output=True, text=True, check=True)
        return int(json.loads(state.stdout)["pid"])

    def exec(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl("-n", self.namespace, "exec", self.pod, "-c", "shard",
                                    "--", *argv, check=check)

    def wait_restarted(self, before: int, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the container restarted and is Ready again; its status."""
        def restarted() -> dict[str, Any] | None:
            status = self.container_status()
            if status.get("restartCount", 0) > before and status.get("ready"):
                return status
            return None
        return wait_for(restarted, timeout, interval=0.5, what=f"{self.pod} restarted")

    def kill(self, sig: int = signal.SIGKILL) -> dict[str, Any]:
        """Signal the server from the host (SIGKILL cannot be sent to a container's
        init from inside it); returns the restarted container's status."""
        before = self.restart_count()
        os.kill(self.host_pid(), sig)
        return self.wait_restarted(before)

    # The interface of tests/server's ServerProcess that the conformance cases use.
    def terminate(self) -> int:
        """A clean stop (SIGTERM); the kubelet restarts it. Its exit code."""
        status = self.kill(signal.SIGTERM)
        return int(status["lastState"]["terminated"]["exitCode"])

    def start(self) -> PodShard:
        return self


def shard_pods(cluster: LocalCluster, namespace: str) -> dict[str, str]:
    """Key (JSON of its segments) -> pod name (a Shard's Pod has its name)."""
    shards = json.loads(cluster.kubectl("-n", namespace, "get", "shards", "-o",
                                        "json").stdout)["items"]
    return {json.dumps(s["spec"]["key"]): s["metadata"]["name"] for s in shards}
