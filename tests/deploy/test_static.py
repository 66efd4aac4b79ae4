"""The chart and the kustomize tree without a cluster: lint, rendered security
settings, least-privilege RBAC in both modes, and the CRD copies kept identical."""

from __future__ import annotations

import io
import json
import logging
import subprocess
from pathlib import Path

import pytest

from shard_operator.logs import configure_logging
from tests.deploy.conftest import CHART, REPO, docs, helm

NAMESPACED = ["--set", "watchNamespaces={apps,more}"]


def render(*args: str) -> list[dict]:
    return docs(helm("template", "rel", str(CHART), "-n", "ops", *args).stdout)


@pytest.mark.parametrize("mode", [[], NAMESPACED], ids=["cluster-wide", "namespaced"])
def test_helm_lint_strict(mode: list[str]) -> None:
    result = helm("lint", "--strict", str(CHART), *mode)
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


def test_values_schema_rejects_bad_values() -> None:
    bad = helm("template", "rel", str(CHART), "--set", "logFormat=xml", check=False)
    assert bad.returncode != 0 and "logFormat" in bad.stderr
    bad = helm("template", "rel", str(CHART), "--set", "watchNamespaces={Not_A_Name}",
               check=False)
    assert bad.returncode != 0


def test_operator_pod_is_hardened_and_labelled() -> None:
    objects = render()
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]}}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    # The endpoints listen on the pod's own IP, never on 0.0.0.0.
    assert "--liveness=http://$(POD_IP):8080/healthz" in container["args"]
    assert "--metrics-host=$(POD_IP)" in container["args"]
    assert not any("0.0.0.0" in arg for arg in container["args"])
    pod_ip = next(e for e in container["env"] if e["name"] == "POD_IP")
    assert pod_ip["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert "hostNetwork" not in pod
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "health": 8080, "metrics": 9090}
    assert_leader_election(container, "rel-shard-operator-leader")
    assert deployment["spec"]["replicas"] == 2
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["helm.sh/chart"] == "shard-operator-0.1.0", obj["metadata"]["name"]
        for key in ("name", "instance", "version", "managed-by"):
            assert f"app.kubernetes.io/{key}" in labels, (obj["kind"], key)


def assert_leader_election(container: dict, lease: str | None) -> None:
    """Election on, with the pod's name and namespace from the downward API, and no
    trace of kopf peering."""
    env = {e["name"]: e.get("valueFrom") for e in container["env"]}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert not [n for n in env if "PEERING" in n or "PRIORITY" in n or n == "POD_ID"]
    assert "--no-leader-election" not in container["args"]
    if lease:
        assert f"--leader-election-id={lease}" in container["args"]
    assert not [a for a in container["args"] if "peering" in a or "priority" in a]


def test_bind_address_and_host_network_values() -> None:
    objects = render("--set", "bindAddress=127.0.0.1", "--set", "hostNetwork=true",
                     "--set", "extraEnv[0].name=KUBERNETES_SERVICE_HOST",
                     "--set", "extraEnv[0].value=127.0.0.1")
    pod = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert "--liveness=http://127.0.0.1:8080/healthz" in container["args"]
    assert "--metrics-host=127.0.0.1" in container["args"]
    # the kubelet's probe goes where the endpoint listens
    assert container["livenessProbe"]["httpGet"]["host"] == "127.0.0.1"
    assert {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"} in container["env"]
    v6 = next(o for o in render("--set", "bindAddress=::1") if o["kind"] == "Deployment")
    assert "--liveness=http://[::1]:8080/healthz" in v6["spec"]["template"]["spec"][
        "containers"][0]["args"]
    for bad in ("0.0.0.0", "::", "localhost", "10.0.0.1; rm"):
        result = helm("template", "rel", str(CHART), "--set", f"bindAddress={bad}",
                      check=False)
        assert result.returncode != 0 and "bindAddress" in result.stderr, bad


def rules_of(objects: list[dict]) -> list[dict]:
    return [rule for o in objects if o["kind"] in ("Role", "ClusterRole")
            for rule in o["rules"]]


def assert_lease_role(objects: list[dict], namespace: str, lease: str) -> None:
    """One Role, in the operator's namespace, for its Lease only: get and update by name,
    create (which resourceNames cannot restrict); bound to the operator's account."""
    (role,) = [o for o in objects if o["kind"] == "Role"
               and any("leases" in r["resources"] for r in o["rules"])]
    assert role["metadata"]["namespace"] == namespace
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "resourceNames": [lease], "verbs": ["get", "update"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]}]
    (binding,) = [o for o in objects if o["kind"] == "RoleBinding"
                  and o["roleRef"]["name"] == role["metadata"]["name"]]
    assert binding["metadata"]["namespace"] == namespace
    assert [s["namespace"] for s in binding["subjects"]] == [namespace]
    others = [r for o in objects if o["kind"] in ("Role", "ClusterRole") and o is not role
              for r in o["rules"]]
    assert not [r for r in others if "leases" in r["resources"]]
    assert not [r for r in rules_of(objects) if "kopf.dev" in r["apiGroups"]]


def test_rbac_cluster_wide_mode() -> None:
    objects = render()
    kinds = [o["kind"] for o in objects]
    assert "ClusterRole" in kinds and "ClusterRoleBinding" in kinds
    # the one Role: the Lease's, in the operator's namespace
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "Role"] == [
        "rel-shard-operator-leader-election"]
    args = next(o for o in objects if o["kind"] == "Deployment")[
        "spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--all-namespaces" in args
    assert_least_privilege(rules_of(objects))
    assert_lease_role(objects, "ops", "rel-shard-operator-leader")


def test_rbac_namespaced_mode_has_no_cluster_grants() -> None:
    objects = render(*NAMESPACED)
    assert not [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    roles = {o["metadata"]["namespace"] for o in objects if o["kind"] == "Role"
             and not o["metadata"]["name"].endswith("-leader-election")}
    bindings = [o for o in objects if o["kind"] == "RoleBinding"
                and not o["metadata"]["name"].endswith("-leader-election")]
    assert roles == {"apps", "more"} == {b["metadata"]["namespace"] for b in bindings}
    assert all(b["subjects"] == [{"kind": "ServiceAccount", "name": "rel-shard-operator",
                                  "namespace": "ops"}] for b in bindings)
    args = next(o for o in objects if o["kind"] == "Deployment")[
        "spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=apps" in args and "--namespace=more" in args
    assert "--all-namespaces" not in args
    assert_least_privilege(rules_of(objects))
    assert_lease_role(objects, "ops", "rel-shard-operator-leader")


def assert_least_privilege(rules: list[dict]) -> None:
    for rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
        assert "secrets" not in rule["resources"], rule
    # The operator writes only status on ShardSets.
    shardsets = [r for r in rules if "shardsets" in r["resources"]]
    assert all(set(r["verbs"]) <= {"get", "list", "watch"} for r in shardsets)
    # It never deletes nor replaces a shard's claim (the garbage collector does, under
    # whenDeleted: Delete), and may touch no PersistentVolume.
    claims = [r for r in rules if "persistentvolumeclaims" in r["resources"]]
    assert claims and all(set(r["verbs"]) <= {"get", "list", "watch", "create", "patch"}
                          for r in claims)
    assert not [r for r in rules if "persistentvolumes" in r["resources"]]
    assert [r for r in rules if "poddisruptionbudgets" in r["resources"]]
    # The NetworkPolicy per ShardSet: made and restored, never deleted (its ShardSet owns
    # it), and no other policy API.
    policies = [r for r in rules if "networkpolicies" in r["resources"]]
    assert policies and all(r["apiGroups"] == ["networking.k8s.io"]
                            and r["resources"] == ["networkpolicies"]
                            and set(r["verbs"]) == {"get", "list", "watch", "create", "patch"}
                            for r in policies), policies


def test_crd_copies_are_identical() -> None:
    """crds/ is the single source; `make manifests` copies it (kustomize and Helm cannot
    read files outside their roots)."""
    sources = sorted((REPO / "crds").glob("*.yaml"))
    assert len(sources) == 2
    assert sorted(p.name for p in (CHART / "files" / "crds").iterdir()) == [
        p.name for p in sources]
    for source in sources:
        helm_copy = CHART / "files" / "crds" / source.name
        assert helm_copy.read_bytes() == source.read_bytes(), f"run make manifests: {source}"
        kustomize_copy = REPO / "manifests" / "crd" / "bases" / source.name
        assert kustomize_copy.read_bytes() == source.read_bytes(), "run make manifests"
    assert not (REPO / "manifests" / "peering").exists()


def test_helm_crds_are_templates_kept_on_uninstall() -> None:
    crds = [o for o in render() if o["kind"] == "CustomResourceDefinition"]
    assert sorted(c["metadata"]["name"] for c in crds) == [
        "shards.shards.anoma.net", "shardsets.shards.anoma.net"]
    assert all(c["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" for c in crds)
    assert not (CHART / "crds").exists()  # Helm would install those once, never upgrade
    assert not [o for o in render("--set", "crds.install=false")
                if o["kind"] == "CustomResourceDefinition"]


@pytest.mark.parametrize("overlay", ["cluster-wide", "namespaced"])
def test_kustomize_overlays_build(overlay: str) -> None:
    out = subprocess.run(["kubectl", "kustomize", str(REPO / "manifests" / "overlays" / overlay)],
                         capture_output=True, text=True, check=True).stdout
    objects = docs(out)
    kinds = {o["kind"] for o in objects}
    assert {"CustomResourceDefinition", "ServiceAccount", "Deployment"} <= kinds
    assert_least_privilege(rules_of(objects))
    if overlay == "namespaced":
        assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
        assert {o["metadata"]["namespace"] for o in objects if o["kind"] == "Role"} == {
            "shard-demo", "shard-operator-system"}
    else:
        assert {"ClusterRole", "ClusterRoleBinding"} <= kinds
    assert_lease_role(objects, "shard-operator-system", "shard-operator-leader")
    assert [o["metadata"]["name"] for o in objects
            if o["kind"] == "CustomResourceDefinition"] == [
        "shards.shards.anoma.net", "shardsets.shards.anoma.net"]
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert_leader_election(deployment["spec"]["template"]["spec"]["containers"][0], None)


def test_election_values_render_and_bad_timings_are_refused() -> None:
    container = next(o for o in render("--set", "leaderElection.leaseDuration=30",
                                       "--set", "leaderElection.renewDeadline=20",
                                       "--set", "leaderElection.retryPeriod=4")
                     if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert {"--lease-duration=30", "--renew-deadline=20", "--retry-period=4"} <= set(
        container["args"])
    single = render("--set", "leaderElection.enabled=false", "--set", "replicaCount=1")
    container = next(o for o in single if o["kind"] == "Deployment")[
        "spec"]["template"]["spec"]["containers"][0]
    assert "--no-leader-election" in container["args"]
    assert not [o for o in single if o["kind"] == "Role"
                and o["metadata"]["name"].endswith("-leader-election")]
    for bad, message in (
            (["--set", "leaderElection.enabled=false"], "replicaCount > 1 needs"),
            (["--set", "leaderElection.renewDeadline=15"], "renewDeadline must be below"),
            (["--set", "leaderElection.retryPeriod=9"], "must exceed 1.2 x"),
            (["--set", "peering.enabled=true"], "peering")):
        result = helm("template", "rel", str(CHART), *bad, check=False)
        assert result.returncode != 0 and message in result.stderr, (bad, result.stderr)


def test_json_logs_cover_kopf_loggers(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("json")
        stream = io.StringIO()
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        # as kopf's ObjectLogger logs: its settings object and a skip flag ride along
        import kopf
        extra = {"k8s_ref": {"name": "x"}, "k8s_skip": False,
                 "settings": kopf.OperatorSettings()}
        objects = logging.getLogger("kopf.objects")
        # kopf's per-event success lines are off by default (one per watch event)...
        objects.info("Handler succeeded.", extra=extra)
        # ...its per-object warnings and errors are kept.
        objects.warning("Handler failed temporarily.", extra=extra)
        logging.getLogger("shard_operator.controller").warning("a %s", "warning")
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    assert [(r["logger"], r["level"], r["message"]) for r in lines] == [
        ("kopf.objects", "WARNING", "Handler failed temporarily."),
        ("shard_operator.controller", "WARNING", "a warning")]
    assert lines[0]["k8s_ref"] == {"name": "x"} and "time" in lines[0]
    assert "settings" not in lines[0]


def test_dockerfile_runs_operator_as_non_root() -> None:
    text = (REPO / "images" / "operator" / "Dockerfile").read_text()
    assert "python:3.11-slim" in text and "USER 65532:65532" in text
    assert 'ENTRYPOINT ["shard-operator"]' in text and '"run"' in text
    assert Path(REPO / "pyproject.toml").is_file()
