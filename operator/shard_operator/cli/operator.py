"""``shard-operator run``: start the operator (kopf) for some namespaces."""

from __future__ import annotations

import asyncio
import logging
import sys

import click


@click.group()
def main() -> None:
    """The shard-operator controller."""


@main.command()
@click.option("-n", "--namespace", "namespaces", multiple=True,
              help="Namespace to watch (repeat for several). Default: all namespaces.")
@click.option("--all-namespaces", "-A", is_flag=True, help="Watch every namespace.")
@click.option("--peering", default=None,
              help="kopf peering object name: with several replicas, one acts at a time.")
@click.option("--priority", default=0, type=int, show_default=True,
              help="Peering priority; the highest-priority live replica acts.")
@click.option("--liveness", default="",
              help="kopf liveness endpoint URL, e.g. http://0.0.0.0:8081/healthz (default: off).")
@click.option("--metrics-port", default=0, type=int,
              help="Serve Prometheus metrics on 127.0.0.1:PORT (0: off).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--verbose", "-v", is_flag=True)
def run(namespaces: tuple[str, ...], all_namespaces: bool, peering: str | None,
        priority: int, liveness: str, metrics_port: int, metrics_host: str, log_format: str,
        verbose: bool) -> None:
    """Run the operator until interrupted (honours KUBECONFIG)."""
    import kopf

    from .. import handlers  # noqa: F401  (registers the kopf handlers)
    from ..logs import configure_logging

    configure_logging(log_format, logging.DEBUG if verbose else logging.INFO)
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=metrics_host)
    if not namespaces and not all_namespaces:
        click.echo("shard-operator: give --namespace NS (repeatable) or --all-namespaces",
                   err=True)
        sys.exit(2)
    try:
        asyncio.run(kopf.operator(
            clusterwide=all_namespaces,
            namespaces=list(namespaces) or None,
            standalone=peering is None,
            peering_name=peering,
            priority=priority,
            liveness_endpoint=liveness or None,
        ))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
