"""The original supervisor's test cases, on the real control plane: schema
[{["a"],5}, ["b"], {["c"],15}], dynamic starts, and "already started"."""

from __future__ import annotations

import json

import pytest

from shard_operator import api
from shard_operator.errors import AlreadyStarted, KeyNotFound, NoShardSet
from shard_operator.keys import key_map_name, shard_name, to_key
from tests.operator.conftest import CONFORMANCE_SCHEMA, shardset, wait_ready


def pod_env(kubectl, name: str) -> dict[str, str]:
    pod = kubectl.json("pod", name)
    return {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}


def name_of(node_id: str, *segments: str) -> str:
    return shard_name(node_id, to_key(list(segments))[0])


@pytest.mark.timeout(240)
async def test_original_conformance_cases(kubectl, operator) -> None:
    ns = kubectl.namespace
    assert kubectl.apply(shardset("node-1", "node-1", CONFORMANCE_SCHEMA)).returncode == 0
    status = wait_ready(kubectl, "node-1", 3)["status"]
    assert status["registeredShards"] == 3 and status["keyMap"] == "shard-key-map-node-1"

    # Initial values reach the pods: a=5, b has none, c=15.
    env_a, env_b, env_c = (pod_env(kubectl, name_of("node-1", k)) for k in "abc")
    assert json.loads(env_a["SHARD_INITIAL_VALUE"]) == 5
    assert "SHARD_INITIAL_VALUE" not in env_b
    assert json.loads(env_c["SHARD_INITIAL_VALUE"]) == 15
    assert json.loads(env_a["SHARD_KEY"]) == ["a"] and env_a["SHARD_NODE_ID"] == "node-1"

    # The key map has rows for a, b and c, and none for d.
    assert api.get_shard_key_map("node-1") == key_map_name("node-1")
    for key in "abc":
        address = await api.alookup("node-1", [key], namespace=ns)
        assert address == f"{name_of('node-1', key)}.{ns}.svc:8080"
    with pytest.raises(KeyNotFound):
        await api.alookup("node-1", ["d"], namespace=ns)

    # Dynamic d with 10, e with no value.
    service_d = await api.astart_shard("node-1", ["d"], 10, namespace=ns)
    assert service_d == f"{name_of('node-1', 'd')}.{ns}.svc:8080"
    assert await api.alookup("node-1", ["d"], namespace=ns) == service_d
    assert json.loads(pod_env(kubectl, name_of("node-1", "d"))["SHARD_INITIAL_VALUE"]) == 10
    service_e = await api.astart_shard("node-1", ["e"], namespace=ns)
    assert await api.alookup("node-1", ["e"], namespace=ns) == service_e
    assert "SHARD_INITIAL_VALUE" not in pod_env(kubectl, name_of("node-1", "e"))

    # A duplicate a with 99 is refused, naming the existing shard; a keeps 5.
    with pytest.raises(AlreadyStarted) as refused:
        await api.astart_shard("node-1", ["a"], 99, namespace=ns)
    assert refused.value.shard == name_of("node-1", "a")
    assert kubectl.json("shard", name_of("node-1", "a"))["spec"]["initialValue"] == 5
    assert json.loads(pod_env(kubectl, name_of("node-1", "a"))["SHARD_INITIAL_VALUE"]) == 5

    # No ShardSet for a node id is an error of its own.
    with pytest.raises(NoShardSet):
        await api.astart_shard("node-9", ["a"], namespace=ns)
    wait_ready(kubectl, "node-1", 5)


async def test_ab_and_ab_are_distinct_shards(kubectl, operator) -> None:
    ns = kubectl.namespace
    spec = shardset("n", "n", [{"key": ["a", "b"], "initialValue": 1},
                               {"key": ["ab"], "initialValue": 2}])
    assert kubectl.apply(spec).returncode == 0
    wait_ready(kubectl, "n", 2)
    first = await api.alookup("n", ["a", "b"], namespace=ns)
    second = await api.alookup("n", ["ab"], namespace=ns)
    assert first != second
    shards = {s["metadata"]["name"]: s["spec"]["key"] for s in kubectl.items("shards")}
    assert sorted(shards.values()) == [["a", "b"], ["ab"]]
