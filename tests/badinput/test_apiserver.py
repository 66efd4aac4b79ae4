"""API server layer of the bad-input corpus: every ShardSet or Shard body of the table is
refused by ``kubectl apply --server-side`` with a message naming the field, and nothing
is stored."""

from __future__ import annotations

import json

import pytest

from tests.badinput.cases import APISERVER, GV, ApiCase


@pytest.mark.parametrize("case", APISERVER, ids=[c.id for c in APISERVER])
def test_bad_spec_is_refused_naming_the_field(kubectl, crds, case: ApiCase) -> None:
    body = {"apiVersion": GV, "kind": case.kind, "metadata": {"name": "bad"},
            "spec": case.spec}
    result = kubectl("apply", "--server-side", "--field-manager=corpus", "-f", "-",
                     input=json.dumps(body), check=False)
    assert result.returncode == 1, result.stdout
    for fragment in case.expect:
        assert fragment in result.stderr, (fragment, result.stderr[:2000])
    assert not kubectl.exists(case.kind.lower(), "bad")


def test_oversized_request_is_refused_by_the_api_server(kubectl, crds) -> None:
    """A ShardSet over the API server's 3 MiB request limit (here: its initialValue)."""
    body = {"apiVersion": GV, "kind": "ShardSet", "metadata": {"name": "bad"},
            "spec": {"nodeId": "n", "schema": [{"key": ["a"], "initialValue": "x" * (7 << 19)}]}}
    result = kubectl("apply", "--server-side", "-f", "-", input=json.dumps(body), check=False)
    assert result.returncode == 1
    assert "Request entity too large: limit is 3145728" in result.stderr, result.stderr[:500]
    assert not kubectl.exists("shardset", "bad")
