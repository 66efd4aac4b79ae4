"""``shard-operator run``: start the operator (kopf) for some namespaces."""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
import time

import click

from ..constants import DEFAULT_IMAGE

PRIORITY_BASE = 2**43  # milliseconds since the epoch: year 2248


def parse_priority(value: str) -> int:
    """An integer, or ``auto``: distinct per process and higher for an older process.

    kopf pauses every operator of a peering when the top priority is shared, so
    replicas must never tie; and an acting replica should never be paused by a newcomer
    (a pause leaves it with a cache that stops following the cluster). So the oldest
    live replica acts: the priority falls with the start time in milliseconds, with a
    random tie-breaker below that (all below 2**53: exact in JSON).
    """
    if value == "auto":
        return (PRIORITY_BASE - time.time_ns() // 1_000_000) * 1000 + secrets.randbelow(1000)
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter("an integer or 'auto'", param_hint="--priority") from None


async def ensure_peering(name: str, namespaces: list[str], clusterwide: bool) -> None:
    """Create the kopf peering object(s) this operator uses, if absent.

    kopf only reads and patches them; were one missing, every replica would act. Kept
    out of the Helm chart and kustomize bases because a custom resource cannot be
    applied in the same pass as its CRD.
    """
    from ..kube import CLUSTER_KOPF_PEERING, KOPF_PEERING, ApiError, Kube, load_config
    from ..metrics import observe_request

    log = logging.getLogger("shard_operator")
    kube = Kube(await load_config(pool_size=4), record=observe_request)
    try:
        for namespace in [None] if clusterwide else namespaces:
            resource = CLUSTER_KOPF_PEERING if namespace is None else KOPF_PEERING
            kind = resource.kind
            metadata = {"name": name} if namespace is None else {
                "name": name, "namespace": namespace}
            try:
                await kube.create({"apiVersion": resource.api_version, "kind": kind,
                                   "metadata": metadata})
                log.info("created %s %s%s", kind, f"{namespace}/" if namespace else "", name)
            except ApiError as error:
                if not error.conflict:
                    log.warning("could not create %s %s: %s", kind, name, error)
    finally:
        await kube.close()


@click.group()
def main() -> None:
    """The shard-operator controller."""


@main.command()
@click.option("-n", "--namespace", "namespaces", multiple=True,
              help="Namespace to watch (repeat for several). Default: all namespaces.")
@click.option("--all-namespaces", "-A", is_flag=True, help="Watch every namespace.")
@click.option("--peering", default=None, envvar="SHARD_OPERATOR_PEERING",
              help="kopf peering object name: with several replicas, one acts at a time.")
@click.option("--priority", default="0", envvar="SHARD_OPERATOR_PRIORITY", show_default=True,
              help="Peering priority (integer, or 'auto' for a random one); the "
                   "highest-priority live replica acts.")
@click.option("--peering-lifetime", default=60, type=click.IntRange(5, 3600),
              envvar="SHARD_OPERATOR_PEERING_LIFETIME", show_default=True,
              help="Seconds after its last keep-alive that a silent replica counts as dead "
                   "(the takeover time after a crash).")
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
def run(namespaces: tuple[str, ...], all_namespaces: bool, peering: str | None,
        priority: str, peering_lifetime: int, liveness: str, metrics_port: int,
        metrics_host: str, shard_image: str | None, log_format: str, verbose: bool) -> None:
    """Run the operator until interrupted (honours KUBECONFIG)."""
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
    prio = parse_priority(priority)
    memory.apply()  # smaller TLS buffers, fixed malloc thresholds: see memory.py
    handlers.Runtime.namespaces = None if all_namespaces else list(namespaces)
    if shard_image:
        render.shard_image = shard_image
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=metrics_host)
    settings = kopf.OperatorSettings()
    settings.peering.lifetime = peering_lifetime
    if not all_namespaces:
        # Serve exactly the namespaces given: kopf then neither lists nor watches
        # Namespaces and CRDs cluster-wide, so a namespaced install needs no cluster role.
        settings.scanning.disabled = True
    logging.getLogger("shard_operator").info(
        "starting: %s, peering %s (priority %d, lifetime %d s), shard image %s",
        "all namespaces" if all_namespaces else "namespaces " + ", ".join(namespaces),
        peering or "off", prio, peering_lifetime, render.shard_image)
    async def operate() -> None:
        if peering:
            await ensure_peering(peering, list(namespaces), all_namespaces)
        await kopf.operator(
            clusterwide=all_namespaces,
            namespaces=list(namespaces),  # empty with clusterwide (None breaks kopf)
            standalone=peering is None,
            peering_name=peering,
            priority=prio,
            liveness_endpoint=liveness or None,
            settings=settings,
            memories=memory.EventOnlyMemories(),  # no per-object state kept: see memory.py
        )

    try:
        asyncio.run(operate())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
