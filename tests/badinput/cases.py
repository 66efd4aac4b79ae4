"""The bad-input corpus: one table per layer, each case with its exact expected outcome.

* ``APISERVER``: ShardSet and Shard bodies sent with ``kubectl apply --server-side``;
  each is refused (exit code 1), nothing is stored, and stderr holds every listed
  fragment: the field path and the rule's message.
* ``CLI``: ``shardctl`` invocations with the exit code of README's table and the
  message fragment on stderr.
* ``SERVER``: raw HTTP requests to a real ``shard-server``: status code, error code in
  the JSON body, and the state unchanged afterwards.

Existing single-rule tests (tests/operator/test_validation.py, tests/server/
test_server_http.py) stay where they are; this corpus covers further cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GV = "shards.anoma.net/v1alpha1"
UNCHECKED = "some validation rules were not checked"  # printed with schema errors
B64_PATTERN = "in body should match '^([A-Za-z0-9+/]{4})*"
NODE_ID_RULE = "nodeId must be a lowercase DNS label that starts with a letter"
SEGMENT_RULE = "a key segment may not contain U+FFFD (invalid UTF-8) or U+001F"
DUPLICATE_RULE = "spec.schema lists one key twice"


@dataclass(frozen=True)
class ApiCase:
    id: str
    kind: str  # ShardSet | Shard
    spec: Any
    expect: tuple[str, ...]


def _set(**spec: Any) -> dict[str, Any]:
    return {"nodeId": "node-1", "schema": [{"key": ["a"]}], **spec}


def _entries(*entries: dict[str, Any]) -> dict[str, Any]:
    return _set(schema=list(entries))


APISERVER: list[ApiCase] = [
    # wrong types (refused by the server-side apply type check, naming the path)
    ApiCase("spec-not-an-object", "ShardSet", "x", (".spec: expected map",)),
    ApiCase("nodeId-integer", "ShardSet", _set(nodeId=5), (".spec.nodeId: expected string",)),
    ApiCase("schema-object", "ShardSet", _set(schema={"key": ["a"]}),
            (".spec.schema: expected list",)),
    ApiCase("key-string", "ShardSet", _entries({"key": "a"}),
            (".spec.schema[0].key: expected list",)),
    ApiCase("segment-number", "ShardSet", _entries({"key": ["a", 7]}),
            (".spec.schema[0].key[1]: expected string",)),
    ApiCase("strategy-number", "ShardSet", _set(strategy=1), (".spec.strategy: expected string",)),
    ApiCase("template-string", "ShardSet", _set(template="pod"),
            (".spec.template: expected map",)),
    ApiCase("entry-without-key", "ShardSet", _entries({"key": ["a"]}, {"initialValue": 1}),
            ("spec.schema[1].key: Required value",)),
    # unknown strategy and enums
    ApiCase("strategy-upper-case", "ShardSet", _set(strategy="ONE_PER_KEY"),
            ('spec.strategy: Unsupported value: "ONE_PER_KEY"',
             'supported values: "one_per_key"')),
    ApiCase("strategy-empty", "ShardSet", _set(strategy=""),
            ('spec.strategy: Unsupported value: ""',)),
    ApiCase("removedKeyPolicy-unknown", "ShardSet", _set(removedKeyPolicy="Forget"),
            ('spec.removedKeyPolicy: Unsupported value: "Forget"',
             'supported values: "Retain", "Delete"')),
    # duplicate, empty and huge keys
    ApiCase("duplicate-base64-keys", "ShardSet",
            _entries({"key": ["AAE="], "keyEncoding": "base64"},
                     {"key": ["AAE="], "keyEncoding": "base64"}),
            ("spec.schema: Invalid value", "key base64:AAE= already exists", DUPLICATE_RULE)),
    ApiCase("duplicate-multi-segment-keys", "ShardSet",
            _entries({"key": ["a", "b"]}, {"key": ["c"]}, {"key": ["a", "b"]}),
            ("spec.schema: Invalid value", "already exists", DUPLICATE_RULE)),
    ApiCase("empty-segment-in-third-entry", "ShardSet",
            _entries({"key": ["a"]}, {"key": ["b"]}, {"key": ["c", "", "d"]}),
            ("spec.schema[2].key[1]: Invalid value", "should be at least 1 chars long")),
    ApiCase("huge-segment-in-later-entry", "ShardSet",
            _entries({"key": ["a"]}, {"key": ["b", "c", "x" * 4096]}),
            ("spec.schema[1].key[2]: Too long: may not be more than 128 bytes",)),
    ApiCase("too-many-segments-in-later-entry", "ShardSet",
            _entries({"key": ["a"]}, {"key": [f"s{i}" for i in range(20)]}),
            ("spec.schema[1].key: Too many: 20: must have at most 8 items",)),
    # non-UTF-8 text without keyEncoding: base64
    ApiCase("replacement-char-in-third-entry", "ShardSet",
            _entries({"key": ["a"]}, {"key": ["b"]}, {"key": ["x", "\ufffd"]}),
            ("spec.schema[2].key[1]: Invalid value", SEGMENT_RULE)),
    ApiCase("unit-separator-in-segment", "ShardSet", _entries({"key": ["a\u001fb"]}),
            ("spec.schema[0].key[0]: Invalid value", SEGMENT_RULE)),
    # bad base64
    ApiCase("base64-bad-padding", "ShardSet", _entries({"key": ["YQ="], "keyEncoding": "base64"}),
            ('spec.schema[0].key[0]: Invalid value: "YQ="', B64_PATTERN)),
    ApiCase("base64-url-alphabet", "ShardSet",
            _entries({"key": ["-_8="], "keyEncoding": "base64"}),
            ('spec.schema[0].key[0]: Invalid value: "-_8="', B64_PATTERN)),
    ApiCase("base64-single-char", "ShardSet",
            _entries({"key": ["AAE=", "Y"], "keyEncoding": "base64"}),
            ('spec.schema[0].key[1]: Invalid value: "Y"', B64_PATTERN)),
    # nodeId too long or with bad characters
    ApiCase("nodeId-64-chars", "ShardSet", _set(nodeId="n" * 64),
            ("spec.nodeId: Too long: may not be more than 40 bytes",)),
    ApiCase("nodeId-trailing-dash", "ShardSet", _set(nodeId="node-"),
            ("spec.nodeId: Invalid value", NODE_ID_RULE)),
    ApiCase("nodeId-dot", "ShardSet", _set(nodeId="node.1"),
            ("spec.nodeId: Invalid value", NODE_ID_RULE)),
    ApiCase("nodeId-non-ascii", "ShardSet", _set(nodeId="n\u00f6de"),
            ("spec.nodeId: Invalid value", NODE_ID_RULE)),
    ApiCase("nodeId-empty", "ShardSet", _set(nodeId=""),
            ("spec.nodeId: Invalid value", "should be at least 1 chars long")),
    # sizes
    ApiCase("schema-10001-entries", "ShardSet",
            _set(schema=[{"key": [str(i)]} for i in range(10_001)]),
            ("spec.schema: Too many: 10001: must have at most 10000 items",)),
    # Shard objects (created by start_shard, or by hand)
    # oversized initial values: the schema bounds the top level of an untyped value
    ApiCase("initial-value-string-over-64KiB", "ShardSet",
            _entries({"key": ["a"], "initialValue": "x" * 65_537}),
            ("spec.schema[0].initialValue: Too long: may not be more than 65536 bytes",)),
    ApiCase("initial-value-list-over-10000-items", "ShardSet",
            _entries({"key": ["a"], "initialValue": [0] * 10_001}),
            ("spec.schema[0].initialValue: Too many: 10001: must have at most 10000 items",)),
    ApiCase("shard-initial-value-over-64KiB", "Shard",
            {"nodeId": "n", "key": ["a"], "initialValue": "x" * 65_537},
            ("spec.initialValue: Too long: may not be more than 65536 bytes",)),
    ApiCase("shard-without-key", "Shard", {"nodeId": "n"}, ("spec.key: Required value",)),
    ApiCase("shard-without-nodeId", "Shard", {"key": ["a"]}, ("spec.nodeId: Required value",)),
    ApiCase("shard-nodeId-bad-chars", "Shard", {"nodeId": "N_1", "key": ["a"]},
            ("spec.nodeId: Invalid value", NODE_ID_RULE)),
    ApiCase("shard-key-object", "Shard", {"nodeId": "n", "key": {"a": 1}},
            (".spec.key: expected list",)),
    ApiCase("shard-empty-segment", "Shard", {"nodeId": "n", "key": [""]},
            ("spec.key[0]: Invalid value", "should be at least 1 chars long")),
    ApiCase("shard-bad-base64", "Shard", {"nodeId": "n", "key": ["%%"], "keyEncoding": "base64"},
            ('spec.key[0]: Invalid value: "%%"', B64_PATTERN)),
    ApiCase("shard-unknown-encoding", "Shard",
            {"nodeId": "n", "key": ["a"], "keyEncoding": "latin1"},
            ('spec.keyEncoding: Unsupported value: "latin1"',)),
    ApiCase("shard-replacement-char", "Shard", {"nodeId": "n", "key": ["\ufffd"]},
            ("spec.key[0]: Invalid value", SEGMENT_RULE)),
    ApiCase("shard-nine-segments", "Shard", {"nodeId": "n", "key": list("abcdefghi")},
            ("spec.key: Too many: 9: must have at most 8 items",)),
]


@dataclass(frozen=True)
class CliCase:
    id: str
    argv: tuple[str, ...]
    exit_code: int
    expect: str
    # What the namespace holds first: "" nothing, "shardset" a ShardSet for node "cli"
    # (no operator runs), "started" that plus the Shard of key ["taken"],
    # "keymap" that plus a valid key map, "badmap" a malformed key map.
    setup: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


CLI: list[CliCase] = [
    CliCase("value-not-json", ("start-shard", "cli", "k", "--value", "{bad"), 2,
            "--value is not valid JSON"),
    CliCase("value-empty", ("start-shard", "cli", "k", "--value", ""), 2,
            "--value is not valid JSON"),
    CliCase("value-trailing-garbage", ("start-shard", "cli", "k", "--value", "5 6"), 2,
            "--value is not valid JSON"),
    CliCase("value-nan", ("start-shard", "cli", "k", "--value", "[1, NaN]"), 2,
            "--value is not valid JSON: NaN is not a JSON value"),
    CliCase("value-overflows-to-infinity", ("start-shard", "cli", "k", "--value", "1e400"), 2,
            "the initial value is not JSON: Out of range float values are not JSON compliant"),
    CliCase("value-over-64KiB", ("start-shard", "cli", "k", "--value",
                                 '{"v": "' + "x" * 65_536 + '"}'), 2,
            "the initial value is 65544 bytes of JSON, over the 65536-byte limit"),
    CliCase("no-segments", ("start-shard", "cli"), 2, "give at least one key segment"),
    CliCase("missing-node-id", ("start-shard",), 2, "Missing argument 'NODE_ID'"),
    CliCase("node-id-bad-chars", ("start-shard", "Node_1", "k"), 2,
            "must be a lowercase DNS label"),
    CliCase("node-id-too-long", ("start-shard", "n" * 41, "k"), 2,
            "is longer than 40 characters"),
    CliCase("bad-base64", ("start-shard", "cli", "%%%", "--base64"), 2,
            "key segment 0 is not valid base64"),
    CliCase("non-canonical-base64", ("start-shard", "cli", "YQ==", "YR==", "--base64"), 2,
            "key segment 1 is not canonical padded base64"),
    CliCase("not-utf8", ("start-shard", "cli", "\udcff"), 2,
            "key segment 0 is not valid Unicode text"),
    CliCase("nine-segments", ("start-shard", "cli", *"abcdefghi"), 2,
            "a key has at most 8 segments, not 9"),
    CliCase("segment-too-long", ("start-shard", "cli", "x" * 129), 2,
            "key segment 0 is longer than 128 characters"),
    CliCase("empty-segment", ("start-shard", "cli", "a", ""), 2,
            "key segment 1 must be a non-empty string"),
    CliCase("replacement-char", ("start-shard", "cli", "a\ufffd"), 2,
            "key segment 0 holds U+FFFD or U+001F; use base64"),
    CliCase("timeout-not-a-number", ("start-shard", "cli", "k", "--timeout", "soon"), 2,
            "'soon' is not a valid float"),
    CliCase("no-shardset", ("start-shard", "nobody", "k"), 4,
            "no ShardSet for node id 'nobody'"),
    CliCase("already-started", ("start-shard", "cli", "taken", "--value", "9"), 3,
            "already started: shard cli-", setup="started"),
    CliCase("not-registered-in-time", ("start-shard", "cli", "late", "--timeout", "2"), 9,
            "was not registered within 2 s", setup="shardset"),
    CliCase("key-map-bad-node-id", ("key-map", "Bad"), 2, "must be a lowercase DNS label"),
    CliCase("lookup-no-key-map", ("lookup", "cli", "a"), 7,
            "key map shard-key-map-cli cannot be read"),
    CliCase("lookup-malformed-key-map", ("lookup", "cli", "a"), 7, "", setup="badmap"),
    CliCase("lookup-unknown-key", ("lookup", "cli", "zz"), 6,
            "key not found in map shard-key-map-cli", setup="keymap"),
    CliCase("lookup-no-segments", ("lookup", "cli"), 2, "give at least one key segment"),
]


@dataclass(frozen=True)
class HttpCase:
    id: str
    method: str
    path: str
    body: bytes | None
    status: int
    error: str  # the "error" field of the JSON answer
    detail: str  # a fragment of its "detail"
    headers: dict[str, str] = field(default_factory=dict)


HTTP: list[HttpCase] = [
    HttpCase("form-encoded-body", "POST", "/v1/write", b"key=a&height=1", 400, "bad_request",
             "request body is not valid JSON",
             {"Content-Type": "application/x-www-form-urlencoded"}),
    HttpCase("utf16-body", "POST", "/v1/write",
             '{"key":["a"],"height":1,"value":1}'.encode("utf-16"), 400, "bad_request",
             "not valid UTF-8"),
    HttpCase("bom-prefixed-body", "POST", "/v1/write",
             b'\xef\xbb\xbf{"key":["a"],"height":1,"value":1}', 400, "bad_request",
             "Unexpected UTF-8 BOM"),
    HttpCase("field-name-wrong-case", "POST", "/v1/write",
             b'{"Key":["a"],"height":1,"value":1}', 400, "bad_request",
             "field 'key' is required"),
    HttpCase("height-huge-exponent", "POST", "/v1/reserve", b'{"key":["a"],"height":1e400}',
             400, "bad_request", "number 1e400 is out of range"),
    HttpCase("read-with-get", "GET", "/v1/read", None, 405, "method_not_allowed",
             "GET is not allowed here"),
    HttpCase("path-traversal", "GET", "/v1/../v1/state/../../etc/passwd", None, 404,
             "not_found", "no route GET"),
    HttpCase("post-to-state", "POST", "/v1/state?x=1", b"{}", 405, "method_not_allowed",
             "POST is not allowed here"),
    HttpCase("content-length-lies-high", "POST", "/v1/write", b'{"key":["a"]}', 413,
             "payload_too_large", "request body is over 4096 bytes",
             {"Content-Length": str(10**9)}),
    HttpCase("backup-unknown-key", "POST", "/v1/backup", b'{"key":["zz"]}', 404, "unknown_key",
             "this shard does not hold that key"),
]
