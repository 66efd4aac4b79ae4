"""``shardctl``: start shards and read the key map from the command line.

Exit codes: 0 ok, 1 unexpected error, 2 invalid input, 3 already started, 4 no ShardSet
for the node id, 5 key map update failed, 6 key not found, 7 key map unavailable,
8 shard name collision, 9 timed out waiting for registration.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import sys
from typing import Any

import click

from .. import api
from ..errors import InvalidInput, ShardOperatorError
from ..kube import ApiError

NAMESPACE = click.option("-n", "--namespace", default="default", show_default=True,
                         envvar="SHARD_NAMESPACE", help="Namespace of the ShardSet.")
BASE64 = click.option("--base64", "as_base64", is_flag=True,
                      help="Segments are base64 of arbitrary bytes.")


def _segments(segments: tuple[str, ...], as_base64: bool) -> list[str | bytes]:
    if not segments:
        raise InvalidInput("give at least one key segment")
    if not as_base64:
        return list(segments)
    try:
        return [base64.b64decode(s, validate=True) for s in segments]
    except (binascii.Error, ValueError) as error:
        raise InvalidInput(f"a segment is not valid base64: {error}") from None


def _not_json(constant: str) -> Any:
    raise json.JSONDecodeError(f"{constant} is not a JSON value", constant, 0)


def _run(action) -> None:
    try:
        result = action()
    except ShardOperatorError as error:
        click.echo(f"shardctl: error: {error}", err=True)
        sys.exit(error.exit_code)
    except ApiError as error:
        click.echo(f"shardctl: error: the API server said {error}", err=True)
        sys.exit(1)
    if result is not None:
        click.echo(result)


@click.group()
def main() -> None:
    """Start shards and look keys up in a node's key map."""


@main.command("start-shard")
@click.argument("node_id")
@click.argument("segments", nargs=-1)
@click.option("--value", "value", default=None,
              help="Initial value at height 0, as JSON (e.g. 5, '\"text\"', null).")
@click.option("--timeout", default=60.0, show_default=True,
              help="Seconds to wait for the key to be registered.")
@BASE64
@NAMESPACE
def start_shard(node_id: str, segments: tuple[str, ...], value: str | None, timeout: float,
                as_base64: bool, namespace: str) -> None:
    """Start a shard for the key SEGMENTS...; print its service once it is in the map."""
    def action() -> str:
        initial: Any = None
        if value is not None:
            try:
                parsed = json.loads(value, parse_constant=_not_json)
            except json.JSONDecodeError as error:
                raise InvalidInput(f"--value is not valid JSON: {error}") from None
            initial = api.NULL if parsed is None else parsed
        return asyncio.run(api.astart_shard(node_id, _segments(segments, as_base64), initial,
                                            namespace=namespace, timeout=timeout))
    _run(action)


@main.command("key-map")
@click.argument("node_id")
def key_map(node_id: str) -> None:
    """Print the name of the node's key map ConfigMap."""
    _run(lambda: api.get_shard_key_map(node_id))


@main.command()
@click.argument("node_id")
@click.argument("segments", nargs=-1)
@BASE64
@NAMESPACE
def lookup(node_id: str, segments: tuple[str, ...], as_base64: bool, namespace: str) -> None:
    """Print the service the key map gives for the key SEGMENTS...."""
    _run(lambda: asyncio.run(api.alookup(node_id, _segments(segments, as_base64),
                                         namespace=namespace)))


if __name__ == "__main__":
    main()
