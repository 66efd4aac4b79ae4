"""``shard-operator run``: start the operator (kopf) for some namespaces."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

import click

from .. import election
from ..constants import DEFAULT_IMAGE


@click.group()
def main() -> None:
    """The shard-operator controller."""


@main.command()
@click.option("-n", "--namespace", "namespaces", multiple=True,
              help="Namespace to watch (repeat for several). Default: all namespaces.")
@click.option("--all-namespaces", "-A", is_flag=True, help="Watch every namespace.")
@click.option("--leader-election/--no-leader-election", default=True, show_default=True,
              envvar="SHARD_OPERATOR_LEADER_ELECTION",
              help="Act only while holding the leader Lease (off: a single local run).")
@click.option("--leader-election-namespace", default=None,
              envvar="SHARD_OPERATOR_LEADER_ELECTION_NAMESPACE",
              help="Namespace of the Lease. Default: the pod's namespace in a pod "
                   "(POD_NAMESPACE or the service account's), else the first --namespace.")
@click.option("--leader-election-id", default=election.DEFAULT_LEASE_NAME, show_default=True,
              envvar="SHARD_OPERATOR_LEADER_ELECTION_ID", help="Name of the Lease.")
@click.option("--lease-duration", default=election.LEASE_DURATION, type=float,
              show_default=True, envvar="SHARD_OPERATOR_LEASE_DURATION",
              help="Seconds a standby waits, after the last renewal it saw, before it takes "
                   "the lease (the takeover time after a crash).")
@click.option("--renew-deadline", default=election.RENEW_DEADLINE, type=float,
              show_default=True, envvar="SHARD_OPERATOR_RENEW_DEADLINE",
              help="Seconds without a successful renewal after which the leader stops "
                   "writing and exits (must be below --lease-duration).")
@click.option("--retry-period", default=election.RETRY_PERIOD, type=float, show_default=True,
              envvar="SHARD_OPERATOR_RETRY_PERIOD",
              help="Seconds between renewals and between attempts to acquire.")
@click.option("--liveness", default="",
              help="kopf liveness endpoint URL, e.g. http://127.0.0.1:8081/healthz (default: off).")
@click.option("--metrics-port", default=0, type=int,
              help="Serve Prometheus metrics on METRICS_HOST:PORT (0: off).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@click.option("--shard-image", default=None, envvar="SHARD_OPERATOR_SHARD_IMAGE",
              help="Shard server image of the default pod template (a ShardSet's "
                   "spec.template overrides it). Default: " + DEFAULT_IMAGE)
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              envvar="SHARD_OPERATOR_LOG_FORMAT", show_default=True)
@click.option("--verbose", "-v", is_flag=True)
def run(namespaces: tuple[str, ...], all_namespaces: bool, leader_election: bool,
        leader_election_namespace: str | None, leader_election_id: str,
        lease_duration: float, renew_deadline: float, retry_period: float, liveness: str,
        metrics_port: int, metrics_host: str, shard_image: str | None, log_format: str,
        verbose: bool) -> None:
    """Run the operator until interrupted (honours KUBECONFIG).

    Exit status: 0 after SIGTERM or SIGINT, 2 for invalid flags, 3 when leadership was
    lost (the replica stopped writing at once; restart it)."""
    from ..memprofile import install_from_env

    install_from_env()  # SHARD_OPERATOR_TRACEMALLOC=PATH: memory reports (off by default)
    import kopf

    from .. import handlers, memory, render  # handlers registers the kopf handlers
    from ..logs import configure_logging

    configure_logging(log_format, logging.DEBUG if verbose else logging.INFO)
    if not namespaces and not all_namespaces:
        click.echo("shard-operator: give --namespace NS (repeatable) or --all-namespaces",
                   err=True)
        sys.exit(2)
    config: election.ElectionConfig | None = None
    if leader_election:
        try:
            config = election.resolve(
                name=leader_election_id, flag_namespace=leader_election_namespace,
                watched=list(namespaces), lease_duration=lease_duration,
                renew_deadline=renew_deadline, retry_period=retry_period,
                service_account_file=election.read_service_account_namespace())
        except ValueError as error:
            click.echo(f"shard-operator: {error}", err=True)
            sys.exit(2)
    memory.apply()  # smaller TLS buffers, fixed malloc thresholds: see memory.py
    handlers.Runtime.namespaces = None if all_namespaces else list(namespaces)
    if shard_image:
        render.shard_image = shard_image
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=metrics_host)
    settings = kopf.OperatorSettings()
    if not all_namespaces:
        # Serve exactly the namespaces given: kopf then neither lists nor watches
        # Namespaces and CRDs cluster-wide, so a namespaced install needs no cluster role.
        settings.scanning.disabled = True
    logging.getLogger("shard_operator").info(
        "starting: %s, leader election %s, shard image %s",
        "all namespaces" if all_namespaces else "namespaces " + ", ".join(namespaces),
        f"on Lease {config.namespace}/{config.name}" if config else "off", render.shard_image)
    try:
        code = asyncio.run(operate(config, kopf, settings, memory, all_namespaces,
                                   list(namespaces), liveness))
    except KeyboardInterrupt:
        code = 0
    sys.exit(code)


async def operate(config: election.ElectionConfig | None, kopf: Any,
                  settings: Any, memory: Any, all_namespaces: bool, namespaces: list[str],
                  liveness: str) -> int:
    """kopf's operator, and beside it the election that opens the write fence; the exit
    status (see ``run``)."""
    from ..fence import FENCE
    from ..handlers import Runtime
    from ..kube import load_config
    from ..leader import EXIT_LOST_LEADERSHIP, Leader

    stop = asyncio.Event()  # kopf's stop flag: set when leadership is lost
    leader = None
    if config is not None:
        # Its own connection pool: renewals never queue behind the controller's writes.
        api = await load_config(pool_size=2)
        elected = leader = Leader(config, FENCE, api, on_lost=lambda why: stop.set())

        async def stopped() -> None:
            FENCE.close("the operator is stopping")  # before the lease is let go
            await elected.stop(release=True)
        Runtime.on_stopped = stopped
        leader.start()
    try:
        await kopf.operator(
            clusterwide=all_namespaces,
            namespaces=namespaces,  # empty with clusterwide (None breaks kopf)
            standalone=True,
            liveness_endpoint=liveness or None,
            settings=settings,
            stop_flag=stop,
            memories=memory.EventOnlyMemories(),  # no per-object state kept: see memory.py
            # Given, so kopf does not derive one from the user name: the image's uid 65532
            # has no passwd entry, and getpass.getuser() raises there.
            identity=config.identity if config else election.identity(os.environ),
        )
    finally:
        if leader is not None:
            FENCE.close("the operator is stopping")  # before the lease is let go
            await leader.stop(release=True)
            await leader.api.close()
    if leader is not None and leader.lost is not None:
        return EXIT_LOST_LEADERSHIP
    return 0


if __name__ == "__main__":
    main()
