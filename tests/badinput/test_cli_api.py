"""CLI and Python API layer of the bad-input corpus: ``shardctl`` exits with README's code
and a clear message for every case of the table; the Python API refuses what the CLI
cannot express (single-string keys, non-text segments, name-hash collisions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shard_operator import api, keys
from shard_operator.errors import HashCollision, InvalidInput
from shard_operator.keymap import render as render_key_map
from tests.badinput.cases import CLI, GV, CliCase

SHARDCTL = Path(sys.executable).parent / "shardctl"
NODE = "cli"


def _setup(kubectl, what: str) -> None:
    if not what:
        return
    kubectl.apply({"apiVersion": GV, "kind": "ShardSet", "metadata": {"name": NODE},
                   "spec": {"nodeId": NODE, "schema": [{"key": ["a"]}]}})
    if what == "started":
        name = keys.shard_name(NODE, (b"taken",))
        result = kubectl.apply({"apiVersion": GV, "kind": "Shard", "metadata": {"name": name},
                                "spec": {"nodeId": NODE, "key": ["taken"], "initialValue": 1}})
        assert result.returncode == 0, result.stderr
    if what in ("keymap", "badmap"):
        data = (render_key_map(NODE, kubectl.namespace, {keys.shard_name(NODE, (b"a",)): (b"a",)})
                if what == "keymap" else {"format": "something/else", "nodeId": NODE})
        kubectl.apply({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": f"shard-key-map-{NODE}"}, "data": data})


def shardctl(namespace: str, *argv: str) -> subprocess.CompletedProcess[str]:
    args = list(argv)
    if args and args[0] in ("start-shard", "lookup"):
        args[1:1] = ["-n", namespace]
    return subprocess.run([str(SHARDCTL), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.parametrize("case", CLI, ids=[c.id for c in CLI])
def test_cli_reports_bad_input_with_its_exit_code(kubectl, crds, case: CliCase) -> None:
    _setup(kubectl, case.setup)
    result = shardctl(kubectl.namespace, *case.argv)
    assert result.returncode == case.exit_code, (result.stdout, result.stderr)
    assert case.expect in result.stderr, result.stderr
    assert result.stdout == ""
    if case.exit_code != 2:
        assert result.stderr.startswith("shardctl: error: "), result.stderr
    if case.id == "not-registered-in-time":  # the shard it made is stopped again
        assert [s["spec"]["key"] for s in kubectl.items("shards")] == []
    if case.id == "already-started":  # the existing shard's value is untouched
        (shard,) = kubectl.items("shards")
        assert shard["spec"]["initialValue"] == 1


def test_malformed_key_map_is_reported_with_its_reason(kubectl, crds) -> None:
    _setup(kubectl, "badmap")
    result = shardctl(kubectl.namespace, "lookup", NODE, "a")
    assert result.returncode == 7
    assert "key map" in result.stderr and "format" in result.stderr, result.stderr


@pytest.mark.parametrize(("key", "message"), [
    ("abc", "a key is a list of segments"),
    (b"abc", "a key is a list of segments"),
    ([], "a key is a non-empty list of segments"),
    ([3], "key segment 0 must be a string or bytes, not int"),
    (["a", None], "key segment 1 must be a string or bytes, not NoneType"),
    ([b"\x00" * 97], "key segment 0 is longer than 128 characters"),
], ids=["str", "bytes", "empty", "int-segment", "none-segment", "long-binary"])
def test_python_api_refuses_malformed_keys_before_any_call(key, message) -> None:
    with pytest.raises(InvalidInput) as raised:
        api.start_shard("node-1", key, timeout=1)
    assert message in str(raised.value)
    assert raised.value.exit_code == 2


async def test_name_hash_collision_is_reported_not_merged(kubectl, crds, monkeypatch) -> None:
    """Two keys whose (patched) name hash collides: the second start is refused."""
    _setup(kubectl, "shardset")
    monkeypatch.setattr(api, "shard_name", lambda node_id, key: f"{node_id}-collide")
    result = kubectl.apply({"apiVersion": GV, "kind": "Shard", "metadata": {"name": "cli-collide"},
                            "spec": {"nodeId": NODE, "key": ["first"], "initialValue": 1}})
    assert result.returncode == 0, result.stderr
    with pytest.raises(HashCollision) as raised:
        await api.astart_shard(NODE, ["second"], 2, namespace=kubectl.namespace, timeout=5)
    assert str(raised.value) == "shard name cli-collide is taken by a different key; not merged"
    assert raised.value.exit_code == 8
    (shard,) = kubectl.items("shards")
    assert (shard["spec"]["key"], shard["spec"]["initialValue"]) == (["first"], 1)


@pytest.mark.parametrize("value", [float("nan"), [float("inf")], {1, 2}, object()],
                         ids=["nan", "inf-in-list", "set", "object"])
def test_python_api_refuses_initial_values_that_are_not_json(value) -> None:
    with pytest.raises(InvalidInput) as raised:
        api.start_shard("node-1", ["a"], value, timeout=1)
    assert str(raised.value).startswith("the initial value is not JSON: "), raised.value


def test_value_that_is_not_plain_json_is_refused(kubectl, crds) -> None:
    """NaN and Infinity parse in Python but are not JSON: refused before anything is made."""
    _setup(kubectl, "shardset")
    for value in ("NaN", "Infinity", "[1, -Infinity]"):
        result = shardctl(kubectl.namespace, "start-shard", NODE, "k", "--value", value)
        assert result.returncode == 2, (value, result.stderr)
        assert "--value is not valid JSON" in result.stderr, result.stderr
    assert kubectl.items("shards") == []
    assert json.loads(kubectl("get", "shards", "-o", "json").stdout)["items"] == []


def test_start_shard_and_lookup_print_json_with_explicit_kubeconfig_and_context(
        kubectl, crds, cluster) -> None:
    """``-o json``, ``--kubeconfig`` and ``--context`` on the commands that talk to the
    cluster (the ShardSet has no operator here: the shard times out, exit 9)."""
    _setup(kubectl, "keymap")
    where = ["--kubeconfig", str(cluster.kubeconfig), "--context", "local"]
    result = subprocess.run([str(SHARDCTL), "lookup", NODE, "a", "-n", kubectl.namespace,
                             *where, "-o", "json"], capture_output=True, text=True,
                            timeout=60, env={"PATH": os.environ["PATH"]})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "nodeId": NODE, "namespace": kubectl.namespace, "key": ["a"], "keyEncoding": "utf8",
        "service": f"{keys.shard_name(NODE, (b'a',))}.{kubectl.namespace}.svc:8080"}
    result = subprocess.run([str(SHARDCTL), "lookup", NODE, "a", "-n", kubectl.namespace,
                             "--kubeconfig", str(cluster.kubeconfig), "--context", "nope"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "kubeconfig" in result.stderr, result.stderr
