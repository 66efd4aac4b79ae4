"""Every way of rendering the install (helm template in both modes, each kustomize
overlay, the samples) is accepted by the real API server (server-side dry run), then
applied for real; the operator's own pods pass the restricted Pod Security level."""

from __future__ import annotations

import json
import subprocess

import pytest

from localcluster import LocalCluster
from tests.conftest import wait_for
from tests.deploy.conftest import CHART, REPO, docs, helm, kubectl_apply

OVERLAYS = REPO / "manifests" / "overlays"
CRDS = ["shardsets.shards.anoma.net", "shards.shards.anoma.net"]


def kustomize(path) -> str:
    return subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True,
                          text=True, check=True).stdout


RENDERINGS = {
    "helm-cluster-wide": lambda: helm("template", "cw", str(CHART), "-n", "ops-cw").stdout,
    "helm-namespaced": lambda: helm("template", "nsd", str(CHART), "-n", "ops-ns",
                                    "--set", "watchNamespaces={apps-a,apps-b}").stdout,
    "kustomize-cluster-wide": lambda: kustomize(OVERLAYS / "cluster-wide"),
    "kustomize-namespaced": lambda: kustomize(OVERLAYS / "namespaced"),
}


@pytest.fixture(scope="module")
def target(private: LocalCluster) -> LocalCluster:
    # The namespaces Helm would be given (--namespace / watchNamespaces); the overlays
    # carry their own Namespace objects. Restricted, like a hardened cluster's.
    for name in ("ops-cw", "ops-ns", "apps-a", "apps-b"):
        private.create_namespace(name, {"pod-security.kubernetes.io/enforce": "restricted"})
    return private


@pytest.mark.timeout(180)
@pytest.mark.parametrize("rendering", list(RENDERINGS))
def test_dry_run_then_apply(target: LocalCluster, rendering: str) -> None:
    manifest = RENDERINGS[rendering]()
    objects = docs(manifest)
    # Namespaces first (a dry run cannot create what the rest is created in).
    namespaces = [o for o in objects if o["kind"] == "Namespace"]
    for namespace in namespaces:
        applied = target.kubectl("apply", "-f", "-", input=json.dumps(namespace),
                                 check=False)
        assert applied.returncode == 0, applied.stderr
    dry = kubectl_apply(target, manifest, "--dry-run=server")
    assert dry.returncode == 0, dry.stderr
    assert "(server dry run)" in dry.stdout
    real = kubectl_apply(target, manifest)
    assert real.returncode == 0, real.stderr
    target.kubectl("wait", "--for=condition=Established", *(f"crd/{c}" for c in CRDS),
                   "--timeout=60s")

    # The operator's Deployment makes pods, admitted in a restricted namespace.
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    ns = deployment["metadata"].get("namespace") or "default"
    selector = ",".join(f"{k}={v}" for k, v in
                        deployment["spec"]["selector"]["matchLabels"].items())
    labels = target.kubectl("get", "namespace", ns, "-o",
                            "jsonpath={.metadata.labels}").stdout
    assert "pod-security.kubernetes.io/enforce" in labels and "restricted" in labels

    def pods() -> int:
        out = target.kubectl("get", "pods", "-n", ns, "-l", selector, "-o", "name").stdout
        return len(out.split())
    wait_for(lambda: pods() >= 2, 60, what=f"operator pods in {ns}")
    events = target.kubectl("get", "events", "-n", ns, "-o", "json").stdout
    assert "violates PodSecurity" not in events


@pytest.mark.timeout(120)
def test_samples_apply_once_crds_exist(target: LocalCluster) -> None:
    target.create_namespace("samples")
    manifest = kustomize(REPO / "manifests" / "samples")
    dry = target.kubectl("apply", "-n", "samples", "--dry-run=server", "-f", "-",
                         input=manifest, check=False)
    if dry.returncode != 0 and "no matches for kind" in dry.stderr:
        # Run alone: install the CRDs first, as the README says.
        target.kubectl("apply", "-k", str(REPO / "manifests" / "crd"))
        target.kubectl("wait", "--for=condition=Established", f"crd/{CRDS[0]}",
                       "--timeout=60s")
        dry = target.kubectl("apply", "-n", "samples", "--dry-run=server", "-f", "-",
                             input=manifest, check=False)
    assert dry.returncode == 0, dry.stderr
    target.kubectl("apply", "-n", "samples", "-f", "-", input=manifest)
    assert target.kubectl("get", "shardset", "node-1", "-n", "samples").returncode == 0
