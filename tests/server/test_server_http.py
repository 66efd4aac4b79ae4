"""The HTTP surface: bad requests (exact status and error, state unchanged), fuzzing that
never yields a 500 and always matches the OpenAPI document, and the document itself."""

from __future__ import annotations

import http.client
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.timeout(120)

MAX_BODY = 4096
CELL_ROUTES = ["/v1/reserve", "/v1/read", "/v1/write", "/v1/unreserve", "/v1/advance-watermark"]


@pytest.fixture(scope="module")
def server(module_servers):
    server = module_servers.start(["a"], initial=5, args=["--max-body-bytes", str(MAX_BODY)])
    assert server.post("/v1/reserve", {"key": ["a"], "height": 3})[0] == 200
    assert server.post("/v1/reserve", {"key": ["a"], "height": 4})[0] == 200
    assert server.post("/v1/write", {"key": ["a"], "height": 4, "value": "four"})[0] == 200
    assert server.post("/v1/advance-watermark", {"key": ["a"], "height": 2})[0] == 200
    return server


@pytest.fixture(scope="module")
def openapi(server) -> dict[str, Any]:
    status, doc = server.request("GET", "/v1/openapi.json")
    assert status == 200
    return doc


def valid(route: str) -> dict[str, Any]:
    """A body the route accepts (cannot change the module server's state)."""
    body: dict[str, Any] = {"key": ["a"], "height": 1}
    if route == "/v1/write":
        body["value"] = "x"  # slot 1 is empty: not applied
    if route == "/v1/read":
        body["timeoutSeconds"] = 0
    return body


def with_(route: str, **changes: Any) -> bytes:
    body = valid(route)
    for name, value in changes.items():
        if value is _DROP:
            body.pop(name)
        else:
            body[name] = value
    return json.dumps(body).encode()


_DROP = object()

BAD_BODIES: list[tuple[str, bytes, str]] = []
for _route in CELL_ROUTES:
    BAD_BODIES += [
        (_route, b'{"key": ["a"], "height": ', "request body is not valid JSON"),
        (_route, b"", "request body is empty"),
        (_route, b"[1, 2]", "request body must be a JSON object, not array"),
        (_route, b"null", "request body must be a JSON object, not null"),
        (_route, b'{"key": ["a"], "height": NaN}', "NaN is not valid JSON"),
        (_route, b'{"key": ["\xff"], "height": 1}', "not valid UTF-8"),
        (_route, with_(_route, key=_DROP), "field 'key' is required"),
        (_route, with_(_route, height=_DROP), "field 'height' is required"),
        (_route, with_(_route, height=True), "field 'height' must be an integer >= 0, not boolean"),
        (_route, with_(_route, height=False), "not boolean false"),
        (_route, with_(_route, height="3"), "field 'height' must be an integer >= 0, not string"),
        (_route, with_(_route, height=1.5), "field 'height' must be an integer >= 0, not number"),
        (_route, with_(_route, height=-1), "field 'height' must be an integer >= 0, not number -1"),
        (_route, with_(_route, height=None), "field 'height' must be an integer >= 0, not null"),
        (_route, with_(_route, height=2**63), "field 'height' must be at most"),
        (_route, with_(_route, key="a"), "field 'key' must be an array of strings, not string"),
        (_route, with_(_route, key=[1]), "field 'key' item 0 must be a string, not number"),
        (_route, with_(_route, key=None), "field 'key' must be an array of strings, not null"),
    ]
BAD_BODIES += [
    ("/v1/write", with_("/v1/write", value=_DROP), "field 'value' is required"),
    (
        "/v1/write",
        with_("/v1/write", value=[[[]]] * 1).replace(b"[[[]]]", b"[" * 300 + b"]" * 300),
        "nested deeper than",
    ),
    ("/v1/write", b'{"key": ["a"], "height": 1, "value": 1e400}', "out of range"),
    ("/v1/read", with_("/v1/read", timeoutSeconds=-1), "field 'timeoutSeconds' must be a number"),
    ("/v1/read", with_("/v1/read", timeoutSeconds="1"), "field 'timeoutSeconds' must be a number"),
    ("/v1/read", with_("/v1/read", timeoutSeconds=True), "field 'timeoutSeconds' must be a number"),
    ("/v1/read", with_("/v1/read", timeoutSeconds=1e6), "field 'timeoutSeconds' must be a number"),
    ("/v1/read", with_("/v1/read", timeoutSeconds=None), "field 'timeoutSeconds' must be a number"),
    (
        "/v1/read",
        with_("/v1/read", timeoutSeconds=10**400),
        "field 'timeoutSeconds' must be a number",
    ),
    ("/v1/read", with_("/v1/read", height=10**400), "field 'height' must be at most"),
    ("/v1/backup", b"{", "request body is not valid JSON"),
    ("/v1/backup", b'{"key": "a"}', "field 'key' must be an array of strings"),
    ("/v1/backup", b"[]", "request body must be a JSON object"),
    ("/v1/backup", b" ", "request body is empty"),  # optional, but present: not JSON
]


@pytest.mark.parametrize(
    ("route", "body", "detail"),
    BAD_BODIES,
    ids=[f"{r}-{i}" for i, (r, _, _) in enumerate(BAD_BODIES)],
)
def test_bad_request_is_400_naming_the_problem_and_changes_nothing(server, route, body, detail):
    before = server.state()
    status, answer = server.request("POST", route, body)
    assert status == 400, answer
    assert answer["error"] == "bad_request"
    assert detail in answer["detail"], answer
    assert server.state() == before


@pytest.mark.parametrize("route", [*CELL_ROUTES, "/v1/backup"])
@pytest.mark.parametrize("key", [["b"], ["a", "b"], [], ["A"], ["a "]], ids=repr)
def test_unknown_key_is_404_and_changes_nothing(server, route, key):
    before = server.state()
    body = valid(route) | {"key": key}
    status, answer = server.request("POST", route, json.dumps(body))
    assert (status, answer["error"]) == (404, "unknown_key"), answer
    assert server.state() == before


def test_key_identity_is_by_segments_not_concatenation(servers):
    server = servers.start(["a", "b"])
    assert server.post("/v1/read", {"key": ["a", "b"], "height": 1})[1] == {"result": "absent"}
    status, answer = server.post("/v1/read", {"key": ["ab"], "height": 1})
    assert (status, answer["error"]) == (404, "unknown_key")


@pytest.mark.parametrize("route", [*CELL_ROUTES, "/v1/backup"])
def test_oversized_body_is_413_and_changes_nothing(server, route):
    before = server.state()
    body = valid(route) | {"value": "x" * MAX_BODY}
    status, answer = server.request("POST", route, json.dumps(body))
    assert status == 413, answer
    assert answer["error"] == "payload_too_large"
    assert str(MAX_BODY) in answer["detail"]
    assert server.state() == before


def test_oversized_chunked_body_is_413(server):
    before = server.state()
    conn = http.client.HTTPConnection(*server.address, timeout=30)
    try:
        chunks = [json.dumps({"key": ["a"], "height": 1, "value": ""}).encode()[:-2]]
        chunks += [b"y" * 1000] * 8 + [b'"}']
        conn.request(
            "POST",
            "/v1/write",
            body=iter(chunks),
            encode_chunked=True,
            headers={"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        answer = json.loads(response.read())
    finally:
        conn.close()
    assert (response.status, answer["error"]) == (413, "payload_too_large")
    assert server.state() == before


def test_a_body_just_under_the_limit_is_accepted(server):
    body = valid("/v1/write")
    body["value"] = ""
    body["value"] = "x" * (MAX_BODY - len(json.dumps(body)))
    data = json.dumps(body)
    assert len(data) == MAX_BODY
    assert server.request("POST", "/v1/write", data) == (200, {"applied": False})


def test_unknown_routes_and_methods_answer_json(server):
    status, answer = server.request("GET", "/v1/nope")
    assert (status, answer["error"]) == (404, "not_found")
    status, answer = server.request("GET", "/v1/reserve")
    assert (status, answer["error"]) == (405, "method_not_allowed")
    status, answer = server.request("DELETE", "/v1/state")
    assert (status, answer["error"]) == (405, "method_not_allowed")


def test_integral_floats_are_heights_as_json_schema_says(server):
    assert server.request("POST", "/v1/read", b'{"key": ["a"], "height": 1.0}') == (
        200,
        {"result": "ok", "value": 5},
    )


def test_health_readiness_and_metrics(server):
    assert server.request("GET", "/healthz") == (200, {"status": "ok"})
    assert server.request("GET", "/readyz") == (200, {"status": "ready"})
    status, text = server.request("GET", "/metrics")
    assert status == 200
    for name in (
        "shard_http_requests_total",
        "shard_http_request_duration_seconds_bucket",
        "shard_waiting_readers",
        "shard_persisted_changes_total",
        "shard_state_commits_total",
        "shard_operations_total",
    ):
        assert name in text, name
    assert server.metric("shard_persisted_changes_total") >= 4
    assert 'shard_operations_total{operation="reserve",outcome="ok"}' in text


# -- the OpenAPI document ---------------------------------------------------------------


def test_openapi_document_describes_every_route(openapi):
    assert openapi["openapi"].startswith("3.1")
    expected = {
        "/v1/reserve": "post",
        "/v1/read": "post",
        "/v1/write": "post",
        "/v1/unreserve": "post",
        "/v1/advance-watermark": "post",
        "/v1/backup": "post",
        "/v1/state": "get",
        "/v1/openapi.json": "get",
        "/healthz": "get",
        "/readyz": "get",
        "/metrics": "get",
    }
    assert {path: next(iter(ops)) for path, ops in openapi["paths"].items()} == expected
    schemas = openapi["components"]["schemas"]
    assert schemas["Height"]["minimum"] == 0 and schemas["Height"]["type"] == "integer"
    assert schemas["CellRequest"]["required"] == ["key", "height"]
    assert schemas["WriteRequest"]["required"] == ["key", "height", "value"]
    for route in CELL_ROUTES:
        responses = openapi["paths"][route]["post"]["responses"]
        assert {"200", "400", "404", "413"} <= set(responses)
    assert "409" in openapi["paths"]["/v1/reserve"]["post"]["responses"]
    assert "408" in openapi["paths"]["/v1/read"]["post"]["responses"]
    for ref in re.findall(r'"\$ref": "#/components/schemas/(\w+)"', json.dumps(openapi)):
        assert ref in schemas


def validate(schema: dict[str, Any], value: Any, doc: dict[str, Any], where: str = "$") -> None:
    """A small JSON Schema check covering the keywords the document uses."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        validate(doc["components"]["schemas"][name], value, doc, where)
        return
    types = {
        "object": dict,
        "array": list,
        "string": str,
        "boolean": bool,
        "null": type(None),
    }
    kind = schema.get("type")
    if kind == "integer":
        assert type(value) is int, f"{where}: {value!r} is not an integer"
    elif kind == "number":
        assert type(value) in (int, float), f"{where}: {value!r} is not a number"
    elif kind is not None:
        assert isinstance(value, types[kind]), f"{where}: {value!r} is not {kind}"
    if "const" in schema:
        assert value == schema["const"], f"{where}: {value!r} != {schema['const']!r}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if "minimum" in schema:
        assert value >= schema["minimum"], where
    if "maximum" in schema:
        assert value <= schema["maximum"], where
    if "pattern" in schema:
        assert re.search(schema["pattern"], value), where
    for name in schema.get("required", []):
        assert isinstance(value, dict) and name in value, f"{where}: {name} missing"
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                validate(sub, value[name], doc, f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            validate(schema["items"], item, doc, f"{where}[{index}]")
    if "oneOf" in schema:
        matches = 0
        for option in schema["oneOf"]:
            try:
                validate(option, value, doc, where)
                matches += 1
            except AssertionError:
                pass
        assert matches == 1, f"{where}: {value!r} matches {matches} of oneOf"
    if "not" in schema:
        try:
            validate(schema["not"], value, doc, where)
        except AssertionError:
            return
        raise AssertionError(f"{where}: {value!r} matches a 'not' schema")


def check_documented(openapi: dict[str, Any], method: str, route: str, status: int, body: Any):
    responses = openapi["paths"][route][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {route} answered undocumented {status}"
    content = responses[str(status)].get("content", {})
    if "application/json" in content:
        validate(content["application/json"]["schema"], body, openapi)


@pytest.mark.parametrize("route", ["/v1/state", "/healthz", "/readyz", "/v1/openapi.json"])
def test_get_answers_match_the_document(server, openapi, route):
    status, body = server.request("GET", route)
    check_documented(openapi, "GET", route, status, body)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
keys = st.one_of(
    st.just(["a"]),
    st.lists(st.sampled_from(["a", "b", "", "é"]), max_size=3),
    json_values,
)
heights = st.one_of(st.integers(0, 8), st.integers(-3, 2**64), json_values)


@st.composite
def bodies(draw: st.DrawFn, route: str) -> bytes:
    if draw(st.integers(0, 9)) == 0:  # raw junk
        return draw(st.binary(max_size=40))
    if draw(st.integers(0, 9)) == 0:  # some other JSON document
        return json.dumps(draw(json_values)).encode()
    body: dict[str, Any] = {}
    if draw(st.integers(0, 7)):
        body["key"] = draw(keys)
    if draw(st.integers(0, 7)):
        body["height"] = draw(heights)
    if route in ("/v1/write", "/v1/read") and draw(st.integers(0, 7)):
        body["value"] = draw(json_values)
    if route == "/v1/read":
        # never a positive timeout: a valid read may have to wait
        body["timeoutSeconds"] = draw(st.just(0) | st.sampled_from([-1, "0", True, None, 1e9, [0]]))
    for name in draw(st.lists(st.text(max_size=6), max_size=2)):
        body.setdefault(name, draw(json_values))
    return json.dumps(body).encode()


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_requests_never_500_and_match_the_document(server, openapi, data):
    route = data.draw(st.sampled_from([*CELL_ROUTES, "/v1/backup"]))
    body = data.draw(bodies(route))
    before = server.state()
    status, answer = server.request("POST", route, body)
    assert status != 500, answer
    check_documented(openapi, "POST", route, status, answer)
    if status != 200:
        assert server.state() == before
