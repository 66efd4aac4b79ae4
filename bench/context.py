"""What every scenario needs: the private cluster, clients, progress output."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shard_operator.kube import Kube

from .k8s import KubeHttp

T0 = time.monotonic()


def progress(message: str) -> None:
    """One line of progress on stderr, with the elapsed time of the whole run."""
    elapsed = time.monotonic() - T0
    print(f"[bench {int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}] {message}", file=sys.stderr,
          flush=True)


@dataclass
class Context:
    kubeconfig: Path
    workdir: Path
    api: KubeHttp  # admin, raw HTTP (watches, metrics)
    kube: Kube  # the operator's own client layer (aiohttp, raw JSON)
    kubectl: Any  # LocalCluster.kubectl
    log_dir: Path
    notes: list[str] = field(default_factory=list)

    async def namespace(self, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        status, body = await self.api.request(
            "POST", "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        if status != 201:
            raise RuntimeError(f"creating namespace {name}: {status} {body}")
        # The service account controller must make "default" before pods can be created.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status, _ = await self.api.request(
                "GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")
            if status == 200:
                return name
            await asyncio.sleep(0.2)
        raise RuntimeError(f"no default service account in {name}")

    async def delete_namespace(self, name: str, timeout: float = 600.0) -> float:
        """Delete a namespace and wait until it is gone (so the next run starts clean)."""
        started = time.monotonic()
        # Delete each collection at once ourselves: the namespace controller (kcm, 20 QPS)
        # would take minutes for thousands of objects. Owners first, so nothing is
        # recreated; pods on KWOK nodes go at once with grace 0.
        for path in (f"/apis/apps/v1/namespaces/{name}/statefulsets",
                     f"/apis/shards.anoma.net/v1alpha1/namespaces/{name}/shardsets",
                     f"/apis/shards.anoma.net/v1alpha1/namespaces/{name}/shards",
                     f"/api/v1/namespaces/{name}/pods?gracePeriodSeconds=0",
                     f"/api/v1/namespaces/{name}/services",
                     f"/api/v1/namespaces/{name}/configmaps"):
            await self.api.request("DELETE", path)
        await self.api.request("DELETE", f"/api/v1/namespaces/{name}")
        while time.monotonic() - started < timeout:
            status, _ = await self.api.request("GET", f"/api/v1/namespaces/{name}")
            if status == 404:
                return time.monotonic() - started
            await asyncio.sleep(1.0)
        raise RuntimeError(f"namespace {name} not gone after {timeout} s")
