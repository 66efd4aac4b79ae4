"""``shardctl`` without a cluster: invalid input is exit 2 with a message (never a
traceback), and every subcommand takes the same connection and output options."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from shard_operator.cli import shardctl

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("argv", [
    ["start-shard", "node-1", b"\xff"],  # not UTF-8: a lone surrogate once decoded
    ["lookup", "node-1", b"a\xfeb"],
    ["start-shard", "node-1", "YR==", "--base64"],  # not canonical base64
    ["start-shard", "node-1", "\u00e9", "--base64"],
], ids=["start-xff", "lookup-xfe", "non-canonical-base64", "non-ascii-base64"])
def test_invalid_input_is_exit_2_with_a_message(argv) -> None:
    result = subprocess.run([str(BIN / "shardctl"), *argv], capture_output=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "KUBECONFIG": "/nonexistent"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(b"shardctl: error: ") and b"Traceback" not in result.stderr


@pytest.mark.parametrize("command", sorted(shardctl.main.commands))
def test_every_subcommand_takes_the_same_options(command: str) -> None:
    options = {opt for p in shardctl.main.commands[command].params for opt in p.opts}
    assert {"-n", "--namespace", "--kubeconfig", "--context", "-o", "--output"} <= options


def test_json_output() -> None:
    result = CliRunner().invoke(shardctl.main, ["key-map", "node-1", "-n", "ns", "-o", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"nodeId": "node-1", "namespace": "ns",
                                         "keyMap": "shard-key-map-node-1"}


def test_installed_as_a_kubectl_plugin() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kubectl-shard"] == scripts["shardctl"]
    result = subprocess.run([str(BIN / "kubectl-shard"), "key-map", "Bad"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("kubectl-shard: error: ")
