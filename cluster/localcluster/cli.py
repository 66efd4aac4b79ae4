"""``localcluster`` command: up, down, stop, start, status, restart."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .cluster import COMPONENTS, ClusterError, LocalCluster, format_health
from .pki import PKIError
from .tools import ToolsError


@click.group()
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=None,
              help="Cluster directory (default: .cluster at the repository root).")
@click.pass_context
def main(ctx: click.Context, directory: Path | None) -> None:
    """The local Kubernetes control plane used by the tests and the demo."""
    ctx.obj = LocalCluster(directory)


def _guard(action):
    try:
        action()
    except (ClusterError, ToolsError, PKIError) as error:
        click.echo(f"localcluster: error: {error}", err=True)
        sys.exit(1)


@main.command()
@click.option("--timeout", default=180.0, show_default=True, help="Seconds to wait for Ready.")
@click.pass_obj
def up(cluster: LocalCluster, timeout: float) -> None:
    """Start the cluster (no-op if it runs; a stale one is replaced)."""
    _guard(lambda: cluster.up(timeout=timeout))
    click.echo(f"""
Cluster ready. Use it with:
  export KUBECONFIG={cluster.kubeconfig}
  export PATH={cluster.bin_dir}:$PATH     # helm, etcd, kube-*, kwok
  kubectl get nodes
Stop it with: make cluster-down""")


@main.command()
@click.pass_obj
def down(cluster: LocalCluster) -> None:
    """Stop every component and delete the cluster's data."""
    _guard(cluster.down)
    strays = cluster.stray_processes()
    if strays:
        click.echo(f"localcluster: error: processes left behind: {strays}", err=True)
        sys.exit(1)


@main.command()
@click.pass_obj
def stop(cluster: LocalCluster) -> None:
    """Stop every component, keeping etcd's data (resume with `start`)."""
    _guard(cluster.stop)


@main.command()
@click.pass_obj
def start(cluster: LocalCluster) -> None:
    """Start a stopped cluster again with its data."""
    _guard(cluster.start)


@main.command()
@click.argument("component", type=click.Choice(COMPONENTS))
@click.pass_obj
def restart(cluster: LocalCluster, component: str) -> None:
    """Restart one component with the same flags (containerd and kubelet are fault
    hooks of the real node: its containers keep running)."""
    _guard(lambda: cluster.restart_component(component))


@main.command()
@click.pass_obj
def status(cluster: LocalCluster) -> None:
    """Health of each component; exit 1 unless all are healthy."""
    report = cluster.health()
    click.echo(format_health(report))
    node = cluster.real_node
    if node.get("enabled"):
        click.echo(f"real node: {node['name']} (containerd + kubelet; pods that tolerate "
                   "shards.anoma.net/real-node run there)")
    else:
        click.echo("real node: none (" + ("; ".join(node.get("missing", [])) or "turned off")
                   + "); every pod is a KWOK simulation")
    sys.exit(0 if all(c.healthy for c in report) else 1)


if __name__ == "__main__":
    main()
