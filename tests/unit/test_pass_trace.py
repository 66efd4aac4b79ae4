"""The pass trace (SHARD_OPERATOR_TRACE=1): one line per pass with its phases, writes,
queue wait and pause; nothing at all when it is off."""

from __future__ import annotations

import logging

import pytest

from shard_operator import pass_trace
from tests.unit.fakekube import NS, World


async def test_off_is_a_shared_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pass_trace, "ENABLED", False)
    assert pass_trace.begin("ns/node", 0.1) is None
    assert pass_trace.phase("shards") is pass_trace.NO_PHASE
    pass_trace.wrote("Pod", "create")  # no trace to count in: nothing happens


async def test_a_traced_pass_logs_its_phases_writes_and_wait(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(pass_trace, "ENABLED", True)
    world = World()
    world.shardset("set", "node-1", [{"key": ["a"]}, {"key": ["b"]}])
    world.controller.queue.add((NS, "node-1"))
    key = await world.controller.queue.get()
    waited = world.controller.queue.waited(key)
    assert waited is not None and waited >= 0
    trace = pass_trace.begin("/".join(key), waited)
    assert trace is not None
    await world.reconcile()
    assert trace.writes["Pod.create"] == 2 and trace.writes["Shard.create"] == 2
    assert {"shards+workloads", "keymap", "status"} <= set(trace.phases)
    with caplog.at_level(logging.INFO, logger="shard_operator.trace"):
        trace.finish(pause=0.25)
    line = caplog.records[-1].getMessage()
    assert line.startswith("pass ns/node-1:") and "pause=0.250" in line
    assert "Pod.create=2" in line and "queue_wait=" in line
