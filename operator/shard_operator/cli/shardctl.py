"""``shardctl`` (also ``kubectl shard``): start shards and read the key map.

Every subcommand takes ``-n/--namespace``, ``--kubeconfig`` and ``--context``, and
``-o json`` for a machine-readable result. Installed as ``kubectl-shard`` too, so that
``kubectl shard start-shard ...`` works as a kubectl plugin.

Exit codes: 0 ok, 1 unexpected error, 2 invalid input, 3 already started, 4 no ShardSet
for the node id, 5 key map update failed, 6 key not found, 7 key map unavailable,
8 shard name collision, 9 timed out waiting for registration.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import click

from .. import api
from ..errors import InvalidInput, ShardOperatorError
from ..keycodec import InvalidKey, KeyEncoding, decode_segment
from ..kube import ApiError, ConfigException, Kube, load_config
from ..missing import MISSING


def _program() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "shardctl"


def connection(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options every subcommand takes: where the cluster is and how to print."""
    for option in reversed([
        click.option("-n", "--namespace", default="default", show_default=True,
                     envvar="SHARD_NAMESPACE", help="Namespace of the ShardSet."),
        click.option("--kubeconfig", default=None, envvar="KUBECONFIG",
                     help="Path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config)."),
        click.option("--context", default=None, help="The kubeconfig context to use."),
        click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text",
                     show_default=True, help="Print the result as text or as JSON."),
    ]):
        command = option(command)
    return command


BASE64 = click.option("--base64", "as_base64", is_flag=True,
                      help="Segments are canonical base64 of arbitrary bytes.")


def _segments(segments: tuple[str, ...], as_base64: bool) -> list[str | bytes]:
    if not segments:
        raise InvalidInput("give at least one key segment")
    if not as_base64:
        return list(segments)
    out: list[str | bytes] = []
    for index, segment in enumerate(segments):
        try:
            out.append(decode_segment(segment, KeyEncoding.BASE64))
        except InvalidKey as error:
            raise InvalidInput(f"key segment {index} {error}") from None
    return out


def _not_json(constant: str) -> Any:
    raise json.JSONDecodeError(f"{constant} is not a JSON value", constant, 0)


def _initial_value(value: str | None) -> Any:
    """``--value``'s JSON (``null`` is a value), or MISSING without one."""
    if value is None:
        return MISSING
    try:
        parsed = json.loads(value, parse_constant=_not_json)
    except json.JSONDecodeError as error:
        raise InvalidInput(f"--value is not valid JSON: {error}") from None
    return parsed


async def _with_kube(kubeconfig: str | None, context: str | None,
                     call: Callable[[Kube], Awaitable[str]]) -> str:
    kube = Kube(await load_config(pool_size=4, kubeconfig=kubeconfig, context=context))
    try:
        return await call(kube)
    finally:
        await kube.close()


def _run(action: Callable[[], str], output: str, fields: Callable[[str], dict[str, Any]]
         ) -> None:
    """Run ``action``; print its result (``fields`` gives the JSON form), or the error
    with its exit code. Input that cannot be used is exit 2, never a traceback."""
    try:
        result = action()
    except ShardOperatorError as error:
        click.echo(f"{_program()}: error: {error}", err=True)
        sys.exit(error.exit_code)
    except ApiError as error:
        click.echo(f"{_program()}: error: the API server said {error}", err=True)
        sys.exit(1)
    except ConfigException as error:
        click.echo(f"{_program()}: error: cannot use the kubeconfig: {error}", err=True)
        sys.exit(1)
    except (UnicodeError, ValueError) as error:  # input no check above foresaw
        click.echo(f"{_program()}: error: invalid input: {error}", err=True)
        sys.exit(InvalidInput.exit_code)
    click.echo(json.dumps(fields(result), ensure_ascii=False) if output == "json" else result)


def _key_json(segments: tuple[str, ...], as_base64: bool) -> dict[str, Any]:
    return {"key": list(segments), "keyEncoding": "base64" if as_base64 else "utf8"}


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
@connection
def start_shard(node_id: str, segments: tuple[str, ...], value: str | None, timeout: float,
                as_base64: bool, namespace: str, kubeconfig: str | None, context: str | None,
                output: str) -> None:
    """Start a shard for the key SEGMENTS...; print its service once it is in the map."""
    def action() -> str:
        initial, key = _initial_value(value), _segments(segments, as_base64)
        api.validate_start(node_id, key, initial)  # before any connection
        return asyncio.run(_with_kube(kubeconfig, context, lambda kube: api.astart_shard(
            node_id, key, initial, namespace=namespace, timeout=timeout, kube=kube)))
    _run(action, output, lambda service: {"nodeId": node_id, "namespace": namespace,
                                          **_key_json(segments, as_base64),
                                          "service": service})


@main.command("key-map")
@click.argument("node_id")
@connection
def key_map(node_id: str, namespace: str, kubeconfig: str | None, context: str | None,
            output: str) -> None:
    """Print the name of the node's key map ConfigMap."""
    _run(lambda: api.get_shard_key_map(node_id), output,
         lambda name: {"nodeId": node_id, "namespace": namespace, "keyMap": name})


@main.command()
@click.argument("node_id")
@click.argument("segments", nargs=-1)
@BASE64
@connection
def lookup(node_id: str, segments: tuple[str, ...], as_base64: bool, namespace: str,
           kubeconfig: str | None, context: str | None, output: str) -> None:
    """Print the service the key map gives for the key SEGMENTS...."""
    def action() -> str:
        key = _segments(segments, as_base64)
        api.validate_start(node_id, key)
        return asyncio.run(_with_kube(kubeconfig, context, lambda kube: api.alookup(
            node_id, key, namespace=namespace, kube=kube)))
    _run(action, output, lambda service: {"nodeId": node_id, "namespace": namespace,
                                          **_key_json(segments, as_base64),
                                          "service": service})


if __name__ == "__main__":
    main()
