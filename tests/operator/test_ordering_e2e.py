"""End to end: the operator on the local control plane, the Ordering side's watcher of
the key map, and real shard-server processes on 127.0.0.1 standing in for the pods
(reached through a resolver; pod and service IPs are never dialled)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from shard_operator.client import ShardClient
from shard_operator.client.keymap import KeyMapWatcher
from shard_operator.errors import KeyNotFound
from tests.operator.conftest import CONFORMANCE_SCHEMA, shardset, wait_ready

SERVER = Path(sys.executable).parent / "shard-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server_like_pod(kubectl, pod_name: str, data_dir: Path) -> tuple[subprocess.Popen,
                                                                            int]:
    """Run shard-server locally with exactly the environment the operator gave the Pod."""
    pod = kubectl.json("pod", pod_name)
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    env["SHARD_DATA_DIR"] = str(data_dir)
    port = free_port()
    proc = subprocess.Popen([str(SERVER), "--host", "127.0.0.1", "--port", str(port)],
                            env={**env, "PATH": "/usr/bin:/bin"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise AssertionError(f"shard-server for {pod_name} did not start") from None
            time.sleep(0.1)


@pytest.mark.timeout(240)
async def test_watcher_resolves_keys_and_reaches_local_shard_servers(
        kubectl, operator, tmp_path: Path) -> None:
    ns = kubectl.namespace
    kubectl.apply(shardset("node-1", "node-1", CONFORMANCE_SCHEMA))
    wait_ready(kubectl, "node-1", 3)
    processes: list[subprocess.Popen] = []
    async with KeyMapWatcher("node-1", namespace=ns) as keys:
        addresses = {k: keys.lookup([k]) for k in "abc"}
        assert len(set(addresses.values())) == 3
        with pytest.raises(KeyNotFound):
            keys.lookup(["d"])
        updates = keys.updates
        # A miss starts the shard; the watch (not a poll) brings it into the local copy.
        address_d = await keys.ensure_started(["d"], 10)
        assert keys.lookup(["d"]) == address_d and keys.updates > updates
        # "already started" is accepted, as the original Ordering does.
        assert await keys.ensure_started(["a"], 99) == addresses["a"]
        addresses["d"] = address_d

        ports = {}
        try:
            for key, address in addresses.items():
                pod_name = address.split(".")[0]
                proc, port = start_server_like_pod(kubectl, pod_name, tmp_path / key)
                processes.append(proc)
                ports[address] = port
            async with ShardClient(lambda service: ("127.0.0.1", ports[service])) as client:
                a = await client.read(addresses["a"], ["a"], 1, timeout=5)
                b = await client.read(addresses["b"], ["b"], 1, timeout=5)
                c = await client.read(addresses["c"], ["c"], 1, timeout=5)
                d = await client.read(addresses["d"], ["d"], 1, timeout=5)
            assert (a.present, a.value) == (True, 5)  # not 99
            assert not b.present
            assert (c.present, c.value) == (True, 15)
            assert (d.present, d.value) == (True, 10)
        finally:
            for proc in processes:
                proc.kill()
                proc.wait(timeout=10)
