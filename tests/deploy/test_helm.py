"""helm install and upgrade on a private control plane, with a CRD change across the
upgrade; RBAC proven by running the operator with nothing but the token of the
ServiceAccount the chart created; restricted Pod Security for the shard pods."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from localcluster import LocalCluster
from shard_operator.keymap import parse
from shard_operator.keys import to_key
from tests.deploy.conftest import CHART, REPO, Operator, helm, sa_kubeconfig
from tests.operator.conftest import CONFORMANCE_SCHEMA, Kubectl, shardset, wait_ready

SHARDSETS_CRD = "shardsets.shards.anoma.net"


def printer_columns(cluster: LocalCluster) -> list[str]:
    crd = json.loads(cluster.kubectl("get", "crd", SHARDSETS_CRD, "-o", "json").stdout)
    return [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]


def chart_with_crd_change(directory: Path) -> Path:
    """A copy of the chart, version 0.1.1, whose ShardSet CRD has one more column."""
    chart = directory / "shard-operator"
    shutil.copytree(CHART, chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["version"] = "0.1.1"
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta))
    path = chart / "files" / "crds" / "shards.anoma.net_shardsets.yaml"
    crd = yaml.safe_load(path.read_text())
    crd["spec"]["versions"][0]["additionalPrinterColumns"].append(
        {"name": "Strategy", "type": "string", "jsonPath": ".spec.strategy", "priority": 1})
    path.write_text(yaml.safe_dump(crd, sort_keys=False))
    return chart


@pytest.mark.timeout(240)
def test_install_upgrade_with_crd_change_uninstall_keeps_crds(
        private: LocalCluster, tmp_path: Path) -> None:
    kc = private.kubeconfig
    private.create_namespace("ops-a", {"pod-security.kubernetes.io/enforce": "restricted"})
    helm("install", "rel-a", str(CHART), "-n", "ops-a", kubeconfig=kc)
    status = json.loads(helm("status", "rel-a", "-n", "ops-a", "-o", "json", kubeconfig=kc).stdout)
    assert status["info"]["status"] == "deployed" and status["version"] == 1
    assert "Strategy" not in printer_columns(private)
    private.kubectl("wait", "--for=condition=Established", f"crd/{SHARDSETS_CRD}",
                    "--timeout=60s")
    private.kubectl("get", "clusterrole", "rel-a-shard-operator")

    # A ShardSet made under 0.1.0 survives the upgrade and the uninstall.
    private.create_namespace("keep")
    Kubectl(private, "keep").apply(shardset("kept", "kept", [{"key": ["a"]}]))

    upgraded = chart_with_crd_change(tmp_path)
    helm("upgrade", "rel-a", str(upgraded), "-n", "ops-a", kubeconfig=kc)
    status = json.loads(helm("status", "rel-a", "-n", "ops-a", "-o", "json", kubeconfig=kc).stdout)
    assert status["info"]["status"] == "deployed" and status["version"] == 2
    assert "Strategy" in printer_columns(private)  # the CRD changed in the cluster
    labels = json.loads(private.kubectl("get", "crd", SHARDSETS_CRD, "-o",
                                        "jsonpath={.metadata.labels}").stdout)
    assert labels["helm.sh/chart"] == "shard-operator-0.1.1"
    wide = private.kubectl("get", "shardset", "kept", "-n", "keep", "-o", "wide").stdout
    assert "STRATEGY" in wide

    helm("uninstall", "rel-a", "-n", "ops-a", kubeconfig=kc)
    assert private.kubectl("get", "clusterrole", "rel-a-shard-operator",
                           check=False).returncode != 0
    assert private.kubectl("get", "crd", SHARDSETS_CRD).returncode == 0  # kept
    assert private.kubectl("get", "shardset", "kept", "-n", "keep").returncode == 0


def can_i(kubeconfig: Path, *args: str) -> bool:
    result = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", "auth", "can-i", *args],
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() in ("yes", "no"), result.stdout + result.stderr
    return result.stdout.strip() == "yes"


def assert_lease_grants(kubeconfig: Path, namespace: str, lease: str) -> None:
    """Its own Lease in its own namespace: get, update and create; nothing else."""
    for verb in ("get", "update"):
        assert can_i(kubeconfig, verb, f"leases/{lease}", "-n", namespace), verb
        assert not can_i(kubeconfig, verb, "leases/other", "-n", namespace), verb
    assert can_i(kubeconfig, "create", "leases", "-n", namespace)
    for verb in ("delete", "list", "watch", "patch"):
        assert not can_i(kubeconfig, verb, f"leases/{lease}", "-n", namespace), verb
    assert not can_i(kubeconfig, "create", "leases", "-n", "apps")
    assert not can_i(kubeconfig, "get", f"leases/{lease}", "-n", "default")


def lease_holder(cluster: LocalCluster, namespace: str, name: str) -> str:
    lease = json.loads(cluster.kubectl("get", "lease", name, "-n", namespace, "-o",
                                       "json").stdout)
    return lease["spec"].get("holderIdentity") or ""


def shardctl(kubeconfig: Path, *args: str) -> str:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    result = subprocess.run([sys.executable, "-m", "shard_operator.cli.shardctl", *args],
                            capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


@pytest.mark.timeout(240)
def test_namespaced_release_operator_runs_on_its_service_account_token(
        private: LocalCluster, tmp_path: Path) -> None:
    kc = private.kubeconfig
    # The CRDs are installed separately (crds.install=false), as with `kubectl apply -k
    # manifests/crd`; the watched namespace enforces the restricted Pod Security level.
    private.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    private.kubectl("wait", "--for=condition=Established", f"crd/{SHARDSETS_CRD}",
                    "--timeout=60s")
    for ns in ("ops-b", "apps", "other"):
        private.create_namespace(ns, {"pod-security.kubernetes.io/enforce": "restricted"})
    helm("install", "rel-b", str(CHART), "-n", "ops-b", "--set", "watchNamespaces={apps}",
         "--set", "crds.install=false", kubeconfig=kc)
    account = "rel-b-shard-operator"
    assert private.kubectl("get", "clusterrolebinding", "-o", "name").stdout.count(
        "rel-b") == 0

    token_kc = sa_kubeconfig(private, "ops-b", account, tmp_path / "sa.kubeconfig")
    who = json.loads(subprocess.run(
        ["kubectl", f"--kubeconfig={token_kc}", "auth", "whoami", "-o", "json"],
        capture_output=True, text=True, check=True).stdout)
    assert who["status"]["userInfo"]["username"] == f"system:serviceaccount:ops-b:{account}"

    # What the token may and may not do.
    assert can_i(token_kc, "create", "pods", "-n", "apps")
    assert can_i(token_kc, "patch", "shardsets", "--subresource=status", "-n", "apps")
    assert not can_i(token_kc, "patch", "shardsets", "-n", "apps")  # status only
    assert not can_i(token_kc, "get", "secrets", "-n", "apps")
    assert not can_i(token_kc, "list", "secrets", "-n", "apps")
    for verb, what in (("list", "shardsets"), ("create", "pods"), ("get", "configmaps"),
                       ("list", "pods")):
        assert not can_i(token_kc, verb, what, "-n", "other"), (verb, what)
    assert not can_i(token_kc, "list", "shardsets", "--all-namespaces")
    assert not can_i(token_kc, "list", "namespaces")
    assert not can_i(token_kc, "list", "customresourcedefinitions")
    # The NetworkPolicy per ShardSet: made and restored, never deleted (owned).
    for verb in ("get", "list", "watch", "create", "patch"):
        assert can_i(token_kc, verb, "networkpolicies.networking.k8s.io", "-n", "apps"), verb
    for verb in ("delete", "update"):
        assert not can_i(token_kc, verb, "networkpolicies.networking.k8s.io", "-n", "apps")
    assert not can_i(token_kc, "list", "networkpolicies.networking.k8s.io", "-n", "other")
    assert_lease_grants(token_kc, "ops-b", "rel-b-shard-operator-leader")

    # The operator as a local process with only that token: the full scenario.
    # (outside a pod the Lease's namespace is a flag; in the pod, POD_NAMESPACE)
    operator = Operator(token_kc, tmp_path / "operator.log", "-n", "apps",
                        "--leader-election-namespace", "ops-b",
                        "--leader-election-id", "rel-b-shard-operator-leader",
                        "--log-format", "json")
    try:
        apps = Kubectl(private, "apps")
        assert apps.apply(shardset("node-1", "node-1", CONFORMANCE_SCHEMA)).returncode == 0
        status = wait_ready(apps, "node-1", 3, timeout=120)["status"]
        assert status["registeredShards"] == 3 and status["readyShards"] == 3
        key_map = parse(apps.json("configmap", "shard-key-map-node-1")["data"])
        assert set(key_map.shards) == {to_key([k])[0] for k in "abc"}
        assert apps.exists("networkpolicy", "shard-clients-node-1")  # made on the token

        # A user starts d (as admin); the operator, on its token, makes it.
        service = shardctl(kc, "start-shard", "node-1", "d", "--value", "10", "-n", "apps")
        assert service.endswith(".apps.svc:8080")
        wait_ready(apps, "node-1", 4, timeout=120)
        assert len(parse(apps.json("configmap", "shard-key-map-node-1")["data"]).shards) == 4

        # Restricted Pod Security admitted the default shard pods (and is enforced).
        assert len(apps.items("pods")) == 4
        privileged = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "priv"},
                      "spec": {"containers": [{"name": "c", "image": "busybox",
                                               "securityContext": {"privileged": True}}]}}
        refused = apps.apply(privileged, server_side=False)
        assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr

        # The operator made its Lease, in its own namespace, and holds it.
        assert lease_holder(private, "ops-b", "rel-b-shard-operator-leader")
        assert operator.metric("shard_operator_leader") == 1
        for state in ("desired", "registered", "ready"):
            assert operator.metric("shard_operator_shards", namespace="apps",
                                   shardset="node-1", state=state) == 4
        assert operator.metric("shard_operator_reconcile_duration_seconds_count",
                               kind="ShardSet") >= 2
        assert operator.metric("shard_operator_api_requests_total", kind="Pod",
                               verb="create", code="2xx") == 4
        assert operator.metric("shard_operator_api_requests_total", kind="ShardSet",
                               verb="patch-status", code="2xx") >= 2
    finally:
        operator.stop()
    log = operator.output()
    assert "Traceback" not in log and "Forbidden" not in log and " 403" not in log, log[-4000:]
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert any(line["logger"].startswith("kopf") for line in lines)


@pytest.mark.timeout(180)
def test_cluster_wide_release_operator_runs_on_its_service_account_token(
        private: LocalCluster, tmp_path: Path) -> None:
    kc = private.kubeconfig
    private.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    private.kubectl("wait", "--for=condition=Established", f"crd/{SHARDSETS_CRD}",
                    "--timeout=60s")
    for ns in ("ops-c", "cw"):
        private.create_namespace(ns)
    helm("install", "rel-c", str(CHART), "-n", "ops-c", "--set", "crds.install=false",
         kubeconfig=kc)
    token_kc = sa_kubeconfig(private, "ops-c", "rel-c-shard-operator",
                             tmp_path / "sa.kubeconfig")
    assert can_i(token_kc, "list", "shardsets", "--all-namespaces")
    assert can_i(token_kc, "watch", "customresourcedefinitions")
    assert not can_i(token_kc, "get", "secrets", "--all-namespaces")
    assert not can_i(token_kc, "list", "namespaces")
    assert not can_i(token_kc, "patch", "shardsets", "-n", "cw")
    assert can_i(token_kc, "watch", "networkpolicies.networking.k8s.io", "--all-namespaces")
    assert not can_i(token_kc, "delete", "networkpolicies.networking.k8s.io", "-n", "cw")
    assert_lease_grants(token_kc, "ops-c", "rel-c-shard-operator-leader")

    operator = Operator(token_kc, tmp_path / "operator.log", "--all-namespaces",
                        "--leader-election-namespace", "ops-c",
                        "--leader-election-id", "rel-c-shard-operator-leader",
                        "--log-format", "json")
    try:
        cw = Kubectl(private, "cw")
        assert cw.apply(shardset("n", "n", [{"key": ["a"]}, {"key": ["b"]}])).returncode == 0
        wait_ready(cw, "n", 2, timeout=120)
        assert cw.exists("networkpolicy", "shard-clients-n")
        assert lease_holder(private, "ops-c", "rel-c-shard-operator-leader")
    finally:
        operator.stop()
    log = operator.output()
    assert "Traceback" not in log and "Forbidden" not in log and " 403" not in log, log[-4000:]
    assert "Not enough permissions" not in log
