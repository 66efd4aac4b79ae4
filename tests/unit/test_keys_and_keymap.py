"""Pure logic: key encoding, names, the key map format, rendering and status."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shard_operator import conditions, keymap, keys, render
from shard_operator.constants import ANNOTATION_TEMPLATE_HASH, KEY_MAP_MAX_BYTES
from shard_operator.keycodec import InvalidKey, KeyEncoding, decode_key
from shard_operator.server.config import ConfigError, ShardConfig
from shard_operator.spec import ShardSetSpec

REPO = Path(__file__).resolve().parents[2]


def test_length_prefix_separates_ab_from_a_b() -> None:
    ab = keys.decode_segments(["ab"])
    a_b = keys.decode_segments(["a", "b"])
    assert ab != a_b
    assert keys.shard_name("n", ab) != keys.shard_name("n", a_b)


def test_same_bytes_in_either_encoding_are_one_key() -> None:
    text = keys.decode_segments(["a", "é"])
    b64 = keys.decode_segments([base64.b64encode(b"a").decode(),
                                base64.b64encode("é".encode()).decode()], "base64")
    assert text == b64
    assert keys.shard_name("n", text) == keys.shard_name("n", b64)


def test_shard_names_are_valid_dns_labels_at_the_longest_node_id() -> None:
    node = "n" + "x" * 39
    name = keys.shard_name(node, keys.decode_segments(["k"]))
    assert len(name) <= 63 and keys.NODE_ID_PATTERN.match(name)


@pytest.mark.parametrize("node_id", ["", "Node", "1abc", "a_b", "a-", "x" * 41])
def test_bad_node_ids(node_id: str) -> None:
    with pytest.raises(keys.InvalidKey):
        keys.validate_node_id(node_id)


@pytest.mark.parametrize(("segments", "encoding", "message"), [
    ([], "utf8", "non-empty list"),
    (["a", ""], "utf8", "segment 1 must be a non-empty string"),
    (["%%"], "base64", "not valid base64"),
    (["a\ufffd"], "utf8", r"U\+FFFD"),
    (["a"] * 9, "utf8", "at most 8 segments"),
    (["a"], "hex", "unknown key encoding"),
])
def test_bad_keys(segments, encoding, message) -> None:
    with pytest.raises(keys.InvalidKey, match=message):
        keys.decode_segments(segments, encoding)


def test_bytes_keys_become_base64_specs() -> None:
    key, spec, encoding = keys.to_key([b"\x00\xff", "a"])
    assert encoding == "base64" and key == (b"\x00\xff", b"a")
    assert keys.decode_segments(spec, "base64") == key


def test_key_json_round_trip() -> None:
    for key in [(b"a",), (b"a", b"b"), (b"\xff\x00",), ("é".encode(),)]:
        assert keys.key_from_json(keys.key_to_json(key)) == key
    assert keys.key_to_json((b"\xff",)) == '{"base64":["/w=="]}'


def test_key_map_render_and_parse() -> None:
    shards = {"n-aaaaaaaaaaaaaaaa": (b"a",), "n-bbbbbbbbbbbbbbbb": (b"\xff",)}
    data = keymap.render("n", "ns", shards)
    assert data["format"] == "shards.anoma.net/key-map/v1"
    assert data["n-aaaaaaaaaaaaaaaa"] == '["a"]'
    parsed = keymap.parse(data)
    assert parsed.address((b"a",)) == "n-aaaaaaaaaaaaaaaa.ns.svc:8080"
    assert parsed.shards[(b"\xff",)] == "n-bbbbbbbbbbbbbbbb"


@pytest.mark.parametrize("data", [None, {}, {"format": "other/v9"},
                                  {"format": "shards.anoma.net/key-map/v1", "nodeId": "n"}])
def test_key_map_parse_rejects_what_it_does_not_know(data) -> None:
    with pytest.raises(keymap.KeyMapFormatError):
        keymap.parse(data)


def test_ten_thousand_keys_fit_in_one_config_map() -> None:
    node = "node-" + "x" * 35  # a 40-character node id
    shards = {}
    for i in range(10_000):
        key = keys.decode_segments([f"key-{i:05d}", "resource"])
        shards[keys.shard_name(node, key)] = key
    size = keymap.data_size(keymap.render(node, "a-long-namespace-name", shards))
    assert size < KEY_MAP_MAX_BYTES, size


def test_pod_rendering_carries_key_value_and_restart_policy() -> None:
    shard = render.shard(name="n-aaaaaaaaaaaaaaaa", namespace="ns", node_id="n",
                         segments=["a"], encoding="utf8", initial_value=None,
                         origin="schema", owner=None)
    shard["metadata"]["uid"] = "u1"
    pod = render.pod(shard, (b"a",), None)
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert json.loads(env["SHARD_INITIAL_VALUE"]) is None  # null is a value
    assert json.loads(env["SHARD_KEY"]) == ["a"] and env["SHARD_NODE_ID"] == "n"
    assert pod["spec"]["restartPolicy"] == "Always"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == "u1"
    no_value = render.shard(name="n-aaaaaaaaaaaaaaaa", namespace="ns", node_id="n",
                            segments=["a"], encoding="utf8", origin="schema", owner=None)
    no_value["metadata"]["uid"] = "u1"
    env = {e["name"] for e in render.pod(no_value, (b"a",), None)["spec"]["containers"][0]["env"]}
    assert "SHARD_INITIAL_VALUE" not in env


def test_template_overrides_and_hash_changes() -> None:
    shard = render.shard(name="n-aaaaaaaaaaaaaaaa", namespace="ns", node_id="n",
                         segments=["a"], encoding="utf8", origin="schema", owner=None)
    shard["metadata"]["uid"] = "u1"
    default = render.pod(shard, (b"a",), None)
    custom = render.pod(shard, (b"a",), {"spec": {"containers": [
        {"name": "x", "image": "mine:1", "env": [{"name": "SHARD_KEY", "value": "evil"}]}]}})
    assert custom["spec"]["containers"][0]["image"] == "mine:1"
    env = {e["name"]: e["value"] for e in custom["spec"]["containers"][0]["env"]}
    assert env["SHARD_KEY"] == '["a"]'  # the operator's environment wins
    assert (default["metadata"]["annotations"][ANNOTATION_TEMPLATE_HASH]
            != custom["metadata"]["annotations"][ANNOTATION_TEMPLATE_HASH])
    assert render.pod(shard, (b"a",), None) == default  # deterministic


def test_schema_shards_reports_cross_encoding_duplicates_and_collisions(monkeypatch) -> None:
    owner = {"metadata": {"name": "s", "namespace": "ns", "uid": "u"},
             "spec": {"nodeId": "n", "schema": [
                 {"key": ["a"]}, {"key": ["YQ=="], "keyEncoding": "base64"}, {"key": ["b"]}]}}
    wanted, problems = render.schema_shards(ShardSetSpec.of(owner["spec"]), owner, "ns")
    assert len(wanted) == 2 and len(problems) == 1 and problems[0] == (
        'spec.schema[1]: key ["a"] is spec.schema[0] again, in another encoding')
    # A forced hash collision: distinct keys, one name. Reported, never merged.
    monkeypatch.setattr(keys, "key_digest", lambda key: "a" * 16)
    wanted, problems = render.schema_shards(ShardSetSpec.of(owner["spec"]), owner, "ns")
    assert len(wanted) == 1 and problems


def test_schema_shards_refuses_initial_values_over_the_limit() -> None:
    nested = {f"f{i}": "x" * 1000 for i in range(70)}  # within every top-level bound
    owner = {"metadata": {"name": "s", "namespace": "ns", "uid": "u"},
             "spec": {"nodeId": "n", "schema": [
                 {"key": ["a"], "initialValue": nested},
                 {"key": ["b"], "initialValue": {"f": "x" * 65_520}}]}}
    wanted, problems = render.schema_shards(ShardSetSpec.of(owner["spec"]), owner, "ns")
    assert [key for key, _ in wanted.values()] == [(b"b",)]  # 65,529 bytes: fits
    assert problems == [f"spec.schema[0]: the initialValue of key [\"a\"] is "
                        f"{render.value_size(nested)} bytes of JSON, over the 65536-byte "
                        "limit"]


def test_conditions_keep_transition_time_unless_status_changes() -> None:
    old = [{"type": "Ready", "status": "False", "reason": "X", "message": "",
            "lastTransitionTime": "2020-01-01T00:00:00Z"}]
    same = conditions.merge(old, [conditions.condition("Ready", False, "Y", "m")], "2030")
    assert same[0]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    flipped = conditions.merge(old, [conditions.condition("Ready", True, "Y", "m")], "2030")
    assert flipped[0]["lastTransitionTime"] == "2030"


# ----- one codec for operator, server and client (issue 14, defect 1) ---------------------

def _crd_base64_pattern(crd: str) -> re.Pattern[str]:
    text = (REPO / "crds" / crd).read_text()
    return re.compile(re.search(r"pattern: '([^']+)'", text).group(1))


@pytest.mark.parametrize("segment", ["YR==", "YWJ=", "AB==", "/x=="])
def test_non_canonical_base64_is_refused_by_every_layer(segment: str) -> None:
    """``YR==`` decodes to ``a`` but is not its encoding: the operator, the server's
    start-up and the CRD all refuse it, so no Shard can hold a key its pod refuses."""
    assert base64.b64decode(segment) != b""  # Python's lenient decoder takes it
    with pytest.raises(keys.InvalidKey, match="canonical"):
        keys.decode_segments([segment], "base64")
    with pytest.raises(InvalidKey, match="segment 0 is not canonical"):
        decode_key([segment], KeyEncoding.BASE64)
    with pytest.raises(ConfigError):
        ShardConfig.from_env({"SHARD_NODE_ID": "n", "SHARD_KEY": json.dumps([segment]),
                              "SHARD_KEY_ENCODING": "base64"})
    for crd in ("shards.anoma.net_shardsets.yaml", "shards.anoma.net_shards.yaml"):
        assert not _crd_base64_pattern(crd).match(segment)


@given(st.binary(min_size=1, max_size=40))
def test_the_crd_pattern_accepts_every_canonical_segment(raw: bytes) -> None:
    segment = base64.b64encode(raw).decode()
    for crd in ("shards.anoma.net_shardsets.yaml", "shards.anoma.net_shards.yaml"):
        assert _crd_base64_pattern(crd).match(segment)
    assert keys.decode_segments([segment], "base64") == (raw,)


@given(st.text(alphabet="ABCQRSYZagw+/=0189", min_size=1, max_size=12))
def test_the_crd_pattern_and_the_codec_agree(segment: str) -> None:
    pattern = _crd_base64_pattern("shards.anoma.net_shardsets.yaml")
    try:
        decode_key([segment], KeyEncoding.BASE64)
        accepted = True
    except InvalidKey:
        accepted = False
    assert bool(pattern.match(segment)) == accepted


def test_lone_surrogates_are_invalid_keys_not_crashes() -> None:
    with pytest.raises(keys.InvalidKey, match="lone surrogate"):
        keys.to_key(["\udcff"])
