"""Every CRD rule rejects bad specs at the API server with a message naming the entry."""

from __future__ import annotations

import pytest

from tests.operator.conftest import shardset

CASES = [
    ("unknown strategy", {"strategy": "one_for_all"}, [{"key": ["a"]}],
     'spec.strategy: Unsupported value: "one_for_all"'),
    ("nodeId with bad characters", {"nodeId": "Node_1"}, [{"key": ["a"]}],
     "spec.nodeId: Invalid value: \"string\": nodeId must be a lowercase DNS label"),
    ("nodeId too long", {"nodeId": "n" * 41}, [{"key": ["a"]}],
     "spec.nodeId: Too long: may not be more than 40 bytes"),
    ("nodeId starting with a digit", {"nodeId": "1node"}, [{"key": ["a"]}],
     "nodeId must be a lowercase DNS label that starts with a letter"),
    ("duplicate keys", {}, [{"key": ["a"]}, {"key": ["b"]}, {"key": ["a"]}],
     "spec.schema lists one key twice"),
    ("empty key", {}, [{"key": []}],
     "spec.schema[0].key: Invalid value: 0: "
     "spec.schema[0].key in body should have at least 1 items"),
    ("empty segment", {}, [{"key": ["a", ""]}],
     'spec.schema[0].key[1]: Invalid value: "": '
     "spec.schema[0].key[1] in body should be at least 1 chars long"),
    ("invalid base64", {}, [{"key": ["%%%"], "keyEncoding": "base64"}],
     "spec.schema[0].key[0] in body should match"),
    # YR== decodes to "a" but is not its canonical encoding (YQ==): the shard server
    # refuses it at start-up, so the API server refuses it first (issue 14, defect 1).
    ("non-canonical base64", {}, [{"key": ["a"]}, {"key": ["YR=="], "keyEncoding": "base64"}],
     "spec.schema[1].key[0] in body should match"),
    ("invalid UTF-8 (U+FFFD) without base64", {}, [{"key": ["a\ufffdb"]}],
     "a key segment may not contain U+FFFD"),
    ("too many segments", {}, [{"key": [str(i) for i in range(9)]}],
     "spec.schema[0].key: Too many: 9: must have at most 8 items"),
    ("huge segment", {}, [{"key": ["x" * 129]}],
     "spec.schema[0].key[0]: Too long: may not be more than 128 bytes"),
    ("unknown key encoding", {}, [{"key": ["a"], "keyEncoding": "hex"}],
     'spec.schema[0].keyEncoding: Unsupported value: "hex"'),
    # spec.clientSelector: the peers of the ShardSet's NetworkPolicy.
    ("clientSelector entry without a selector",
     {"clientSelector": [{"podSelector": {}}, {}]}, [{"key": ["a"]}],
     'spec.clientSelector[1]: Invalid value: "object": each spec.clientSelector entry needs '
     "a podSelector, a namespaceSelector or both"),
    ("more than 16 clientSelector entries",
     {"clientSelector": [{"podSelector": {"matchLabels": {"app": f"a{i}"}}}
                         for i in range(17)]}, [{"key": ["a"]}],
     "spec.clientSelector: Too many: 17: must have at most 16 items"),
    ("clientSelector with ipBlock",
     {"clientSelector": [{"ipBlock": {"cidr": "0.0.0.0/0"}, "podSelector": {}}]},
     [{"key": ["a"]}],
     'spec.clientSelector[0]: Invalid value: "object": spec.clientSelector entries may not '
     "use ipBlock"),
    ("clientSelector In without values",
     {"clientSelector": [{"namespaceSelector": {"matchExpressions": [
         {"key": "team", "operator": "In"}]}}]}, [{"key": ["a"]}],
     "spec.clientSelector[0].namespaceSelector.matchExpressions[0]: Invalid value: "
     '"object": namespaceSelector.matchExpressions: In and NotIn need values'),
    ("clientSelector with a bad label key",
     {"clientSelector": [{"podSelector": {"matchLabels": {"not a key": "x"}}}]},
     [{"key": ["a"]}],
     "spec.clientSelector[0].podSelector.matchLabels: Invalid value: \"object\": "
     "podSelector.matchLabels keys must be label keys"),
    ("clientSelector with a bad label value",
     {"clientSelector": [{"podSelector": {"matchLabels": {"app": "a b"}}}]},
     [{"key": ["a"]}], "spec.clientSelector[0].podSelector.matchLabels.app: Invalid value"),
    ("clientSelector with an unknown operator",
     {"clientSelector": [{"podSelector": {"matchExpressions": [
         {"key": "app", "operator": "Matches"}]}}]}, [{"key": ["a"]}],
     "spec.clientSelector[0].podSelector.matchExpressions[0].operator: Unsupported value: "
     '"Matches"'),
]


@pytest.mark.parametrize(("spec", "schema", "message"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_shardset_is_rejected(kubectl, crds, spec, schema, message) -> None:
    body = shardset("bad", "node-1", schema)
    body["spec"].update(spec)
    result = kubectl.apply(body)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert not kubectl.exists("shardset", "bad")


def test_client_selector_peers_are_accepted(kubectl, crds) -> None:
    peers = [{"podSelector": {"matchLabels": {"app": "ordering"}}},
             {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "o"}},
              "podSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}},
             {"namespaceSelector": {}}]
    body = shardset("peers", "node-1", [{"key": ["a"]}], clientSelector=peers)
    assert kubectl.apply(body).returncode == 0
    assert kubectl.json("shardset", "peers")["spec"]["clientSelector"] == peers


def test_missing_node_id_is_rejected(kubectl, crds) -> None:
    body = shardset("bad", "x", [{"key": ["a"]}])
    del body["spec"]["nodeId"]
    result = kubectl.apply(body)
    assert result.returncode != 0 and 'spec.nodeId: Required value' in result.stderr


def test_node_id_is_immutable(kubectl, crds) -> None:
    assert kubectl.apply(shardset("imm", "one", [{"key": ["a"]}])).returncode == 0
    result = kubectl.apply(shardset("imm", "two", [{"key": ["a"]}]))
    assert result.returncode != 0 and "nodeId is immutable" in result.stderr


def test_shard_spec_is_immutable(kubectl, crds) -> None:
    shard = {"apiVersion": "shards.anoma.net/v1alpha1", "kind": "Shard",
             "metadata": {"name": "s1"}, "spec": {"nodeId": "n", "key": ["a"]}}
    assert kubectl.apply(shard).returncode == 0
    shard["spec"]["key"] = ["b"]
    result = kubectl.apply(shard)
    assert result.returncode != 0 and "a Shard's spec is immutable" in result.stderr


def test_valid_base64_and_null_initial_value_are_accepted(kubectl, crds) -> None:
    body = shardset("ok", "node-1", [{"key": ["AAE=", "/w=="], "keyEncoding": "base64"},
                                     {"key": ["a"], "initialValue": None}])
    assert kubectl.apply(body).returncode == 0
    stored = kubectl.json("shardset", "ok")["spec"]["schema"]
    assert stored[1] == {"key": ["a"], "keyEncoding": "utf8", "initialValue": None}


def test_shard_with_non_canonical_base64_is_rejected(kubectl, crds) -> None:
    shard = {"apiVersion": "shards.anoma.net/v1alpha1", "kind": "Shard",
             "metadata": {"name": "s2"},
             "spec": {"nodeId": "n", "key": ["YR=="], "keyEncoding": "base64"}}
    result = kubectl.apply(shard)
    assert result.returncode != 0 and "spec.key[0] in body should match" in result.stderr
    shard["spec"]["key"] = ["YQ=="]
    assert kubectl.apply(shard).returncode == 0


async def test_shardsets_are_selected_by_node_id_on_the_server(kubectl, crds) -> None:
    """``start_shard`` asks for the ShardSet of one node id (``spec.nodeId`` is a selectable
    field), instead of downloading every ShardSet with its schema (issue 14, defect 8)."""
    from shard_operator import api
    from shard_operator.kube import Kube, load_config

    for name, node in (("one", "node-a"), ("two", "node-b")):
        assert kubectl.apply(shardset(name, node, [{"key": ["a"]}])).returncode == 0
    listed = kubectl.json("shardsets", "--field-selector", "spec.nodeId=node-b")["items"]
    assert [s["metadata"]["name"] for s in listed] == ["two"]
    kube = Kube(await load_config(pool_size=2))
    try:
        assert (await api._find_shardset(kube, kubectl.namespace, "node-a"))[
            "metadata"]["name"] == "one"
        assert (await kube.list("ShardSet", kubectl.namespace,
                                field_selector="spec.nodeId=node-c"))["items"] == []
    finally:
        await kube.close()
