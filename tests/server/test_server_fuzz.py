"""Schemathesis against the shard server's own OpenAPI document, fetched from a real
``shard-server`` on 127.0.0.1: positive and negative (schema-violating) requests to every
operation. No 500, every answer matches the document, the process stays up, and a
rejected request leaves the state as it was. Bounded and derandomized, so a failure
replays.

Schemathesis' pytest plugin (``from_fixture``) does not run under pytest 9, so the
operations' Hypothesis strategies are drawn from directly.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.config._checks import (
    NegativeDataRejectionConfig,
    PositiveDataAcceptanceConfig,
)

pytestmark = pytest.mark.timeout(600)
MAX_BODY = 4096
EXAMPLES = 60  # per operation and generation mode


@pytest.fixture(scope="module")
def fuzz_server(module_servers):
    server = module_servers.start(["a"], initial=5, args=["--max-body-bytes", str(MAX_BODY)])
    for height in (3, 4):
        assert server.post("/v1/reserve", {"key": ["a"], "height": height})[0] == 200
    assert server.post("/v1/write", {"key": ["a"], "height": 4, "value": "four"})[0] == 200
    return server


@pytest.fixture(scope="module")
def operations(fuzz_server) -> dict[str, Any]:
    """Every operation of the document the server serves, by ``METHOD path``."""
    host, port = fuzz_server.address
    loaded = schemathesis.openapi.from_url(f"http://{host}:{port}/v1/openapi.json")
    # A schema-violating body may also be refused as over the size limit (413).
    loaded.config.checks.negative_data_rejection = NegativeDataRejectionConfig(
        expected_statuses=[400, 404, 405, 413, 415, 422])
    # 408 is a read's documented answer when its (here always short) timeout runs out.
    loaded.config.checks.positive_data_acceptance = PositiveDataAcceptanceConfig(
        expected_statuses=["2xx", 404, 408, 409])
    found = {f"{op.method.upper()} {op.path}": op
             for op in (result.ok() for result in loaded.get_all_operations())}
    assert {"POST /v1/write", "POST /v1/read", "GET /v1/state"} <= set(found), found
    return found


def _bounded_read(case) -> None:
    """A valid read may wait for a write forever: give every read a short timeout."""
    if case.path == "/v1/read" and isinstance(case.body, dict):
        timeout = case.body.get("timeoutSeconds")
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout > 0.2:
            case.body["timeoutSeconds"] = 0.1


def _check(case, server, mode: GenerationMode, own_key: bool) -> int:
    _bounded_read(case)
    if own_key and mode is GenerationMode.POSITIVE and isinstance(case.body, dict):
        case.body["key"] = ["a"]  # the key this server holds: reach past the 404
    before = server.state()
    host, port = server.address
    response = case.call(base_url=f"http://{host}:{port}", timeout=30)
    assert response.status_code != 500, response.text
    case.validate_response(response)
    assert server.proc.poll() is None, server.log_text()[-2000:]
    if response.status_code >= 400:
        assert server.state() == before, (case.path, case.body, response.text)
    return response.status_code


POSTS = ["/v1/reserve", "/v1/read", "/v1/write", "/v1/unreserve", "/v1/advance-watermark",
         "/v1/backup"]
# GET routes take no input, so they have no schema-violating (negative) form.
CASES = [(f"POST {p}", mode) for p in POSTS
         for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
CASES += [(f"GET {p}", GenerationMode.POSITIVE)
          for p in ("/v1/state", "/healthz", "/readyz", "/metrics")]


@pytest.mark.parametrize(("name", "mode"), CASES, ids=[f"{n}-{m.value}" for n, m in CASES])
def test_server_answers_generated_requests_as_documented(operations, fuzz_server, name,
                                                         mode) -> None:
    if name not in operations:
        raise AssertionError(f"{name} is not in the served document: {sorted(operations)}")
    statuses: list[int] = []

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data) -> None:
        case = data.draw(operations[name].as_strategy(mode))
        statuses.append(_check(case, fuzz_server, mode, data.draw(st.integers(0, 3)) > 0))

    run()
    assert statuses, "no request was generated"
    print(f"{name} {mode.value}: {len(statuses)} requests, statuses {sorted(set(statuses))}")
    if mode is GenerationMode.NEGATIVE and name.startswith("POST"):
        assert any(s == 400 for s in statuses), statuses
