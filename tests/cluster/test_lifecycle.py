"""Lifecycle of a second, private cluster: up is idempotent, stop/start keeps data, a
stale cluster is replaced, and down leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from localcluster import LocalCluster


@pytest.fixture(scope="module")
def private_cluster(tmp_path_factory: pytest.TempPathFactory):
    local = LocalCluster(Path(tmp_path_factory.mktemp("lc")) / "c")
    local.up()
    yield local
    local.down()
    assert local.stray_processes() == []


@pytest.mark.timeout(300)
def test_lifecycle(private_cluster: LocalCluster, capfd: pytest.CaptureFixture[str]) -> None:
    local = private_cluster
    pids = {c.name: c.pid for c in local.health()}

    # up on a running cluster is a no-op.
    local.up()
    assert {c.name: c.pid for c in local.health()} == pids
    assert "already running" in capfd.readouterr().err

    # stop and start keep etcd's data.
    local.kubectl("create", "configmap", "kept", "-n", "default")
    local.stop()
    assert not any(c.running for c in local.health())
    assert local.stray_processes() == []
    local.start()
    kept = json.loads(local.kubectl("get", "configmap", "kept", "-o", "json").stdout)
    assert kept["metadata"]["name"] == "kept"

    # A half-dead cluster is replaced, with a message that says so.
    etcd_pid = next(c.pid for c in local.health() if c.name == "etcd")
    os.kill(etcd_pid, signal.SIGKILL)
    local.up()
    err = capfd.readouterr().err
    assert "stale or half-started" in err and "etcd" in err
    assert local.is_healthy()
    missing = local.kubectl("get", "configmap", "kept", check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr
