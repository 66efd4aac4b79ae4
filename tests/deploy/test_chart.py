"""Chart conventions and references, without a cluster: Chart.yaml (kubeVersion,
Artifact Hub annotations), no link to anything that does not exist, the typed free-form
values, the shard image settable in one place each, the operator NetworkPolicy, the
`helm test` pod, and the chart and kustomize defaults agreeing."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from shard_operator import render as render_module
from shard_operator.constants import DEFAULT_IMAGE
from tests.deploy.conftest import CHART, REPO, docs, helm

CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text())


def render(*args: str) -> list[dict]:
    return docs(helm("template", "rel", str(CHART), "-n", "ops", *args).stdout)


def refused(*args: str) -> str:
    result = helm("template", "rel", str(CHART), *args, check=False)
    assert result.returncode != 0, f"helm accepted {args}"
    return result.stderr


def test_no_reference_to_what_does_not_exist() -> None:
    """No repository URL or registry path of a project that does not publish one."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    hits = []
    for name in filter(None, files):
        path = REPO / name
        if name == "tests/deploy/test_chart.py" or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for needle in ("github.com/anoma", "ghcr.io/anoma", "registry.example"):
            if needle in text:
                hits.append(f"{name}: {needle}")
    assert hits == []
    assert "home" not in CHART_META and "sources" not in CHART_META


def test_chart_metadata() -> None:
    assert CHART_META["kubeVersion"] == ">=1.29.0-0"
    annotations = CHART_META["annotations"]
    assert annotations["artifacthub.io/license"] == "Apache-2.0"
    version = CHART_META["appVersion"]
    images = yaml.safe_load(annotations["artifacthub.io/images"])
    assert {i["name"]: i["image"] for i in images} == {
        "shard-operator": f"shard-operator:{version}", "shard-server": f"shard-server:{version}"}
    assert DEFAULT_IMAGE == f"shard-server:{version}"
    crds = yaml.safe_load(annotations["artifacthub.io/crds"])
    sources = {yaml.safe_load(p.read_text())["metadata"]["name"]: yaml.safe_load(p.read_text())
               for p in (REPO / "crds").glob("*.yaml")}
    assert {c["name"] for c in crds} == set(sources)
    for crd in crds:
        spec = sources[crd["name"]]["spec"]
        assert crd["kind"] == spec["names"]["kind"]
        assert crd["version"] in [v["name"] for v in spec["versions"]]
    examples = yaml.safe_load(annotations["artifacthub.io/crdsExamples"])
    assert examples == [yaml.safe_load((REPO / "manifests/samples/shardset.yaml").read_text())]
    assert (CHART / "README.md").is_file()


def test_kube_version_is_enforced() -> None:
    assert "incompatible with Kubernetes v1.28" in refused("--kube-version=1.28.9")
    assert render("--kube-version=1.29.0")


@pytest.mark.parametrize("setting, where", [
    ("securityContext.privileged=true", "/securityContext/privileged"),
    ("securityContext.allowPrivilegeEscalation=true", "/securityContext/allowPrivilegeEscalation"),
    ("securityContext.capabilities.add={SYS_ADMIN}", "/securityContext/capabilities/add"),
    ("securityContext.bogus=1", "/securityContext"),
    ("podSecurityContext.runAsNonRoot=false", "/podSecurityContext/runAsNonRoot"),
    ("podSecurityContext.runAsUser=0", "/podSecurityContext/runAsUser"),
    ("podSecurityContext.seccompProfile.type=Unconfined", "/podSecurityContext/seccompProfile"),
    ("resources.limits.memory=lots", "/resources/limits/memory"),
    ("resources.requests.cpu=fast", "/resources/requests/cpu"),
    ("resources.limit.memory=1Gi", "/resources"),
])
def test_schema_refuses_unsafe_or_malformed_free_form_values(setting: str, where: str) -> None:
    assert where in refused("--set", setting)


def test_schema_accepts_sound_overrides() -> None:
    objects = render("--set", "resources.limits.memory=1Gi", "--set", "resources.requests.cpu=250m",
                     "--set", "resources.limits.cpu=2", "--set", "podSecurityContext.fsGroup=65532",
                     "--set", "securityContext.readOnlyRootFilesystem=true")
    container = next(o for o in objects if o["kind"] == "Deployment")[
        "spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"memory": "1Gi", "cpu": 2}


def shard_image_env(objects: list[dict]) -> str:
    container = next(o for o in objects if o["kind"] == "Deployment")[
        "spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}["SHARD_OPERATOR_SHARD_IMAGE"]


def test_shard_image_one_place_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chart value -> the operator's environment variable -> the default pod template;
    a ShardSet's spec.template overrides it."""
    assert shard_image_env(render()) == DEFAULT_IMAGE
    assert shard_image_env(render("--set", "shardImage.repository=reg.test/x/shard-server",
                                  "--set", "shardImage.tag=9.9")) == "reg.test/x/shard-server:9.9"
    help_text = subprocess.run([sys.executable, "-m", "shard_operator.cli.operator", "run",
                                "--help"], capture_output=True, text=True, check=True,
                               cwd=REPO).stdout
    assert "--shard-image" in help_text
    monkeypatch.setattr(render_module, "shard_image", "reg.test/x/shard-server:9.9")
    shard = render_module.shard(name="n-1", namespace="ns", node_id="n", segments=["a"],
                                encoding="utf8", origin="schema",
                                owner={"metadata": {"name": "n", "uid": "u"}})
    shard["metadata"]["uid"] = "s"
    pod = render_module.pod(shard, (b"a",), None)
    assert pod["spec"]["containers"][0]["image"] == "reg.test/x/shard-server:9.9"
    own = render_module.pod(shard, (b"a",), {"spec": {"containers": [
        {"name": "shard", "image": "mine:1"}]}})
    assert own["spec"]["containers"][0]["image"] == "mine:1"


def test_shard_image_flag_and_env_reach_the_operator(tmp_path) -> None:
    """The flag and its environment variable set the image the operator renders (the
    process logs it at start; no cluster is needed to get that far)."""
    code = ("import sys; from click.testing import CliRunner;"
            "from shard_operator.cli import operator as o; from shard_operator import render;"
            "import kopf; kopf.operator = None;"  # stop before connecting
            "r = CliRunner().invoke(o.main, sys.argv[1:], catch_exceptions=True);"
            "print('IMAGE', render.shard_image)")
    env_run = subprocess.run([sys.executable, "-c", code, "run", "-n", "x"],
                             env={"SHARD_OPERATOR_SHARD_IMAGE": "reg.test/env:1",
                                  "PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True, cwd=REPO, timeout=60)
    assert "IMAGE reg.test/env:1" in env_run.stdout, env_run.stderr
    flag_run = subprocess.run([sys.executable, "-c", code, "run", "-n", "x",
                               "--shard-image=reg.test/flag:2"],
                              capture_output=True, text=True, cwd=REPO, timeout=60)
    assert "IMAGE reg.test/flag:2" in flag_run.stdout, flag_run.stderr


def test_operator_network_policy() -> None:
    assert not [o for o in render() if o["kind"] == "NetworkPolicy"]
    (policy,) = [o for o in render("--set", "networkPolicy.enabled=true")
                 if o["kind"] == "NetworkPolicy"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "shard-operator", "app.kubernetes.io/instance": "rel"}
    assert policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 9090}]}]
    (policy,) = [o for o in render(
        "--set", "networkPolicy.enabled=true",
        "--set-json", 'networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":'
                      '{"kubernetes.io/metadata.name":"monitoring"}}}]')
        if o["kind"] == "NetworkPolicy"]
    assert policy["spec"]["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}]
    (closed,) = [o for o in render("--set", "networkPolicy.enabled=true",
                                   "--set", "metrics.enabled=false")
                 if o["kind"] == "NetworkPolicy"]
    assert closed["spec"]["ingress"] == []


def test_helm_test_pod() -> None:
    (pod,) = [o for o in render() if o["kind"] == "Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False
    assert "rel-shard-operator-metrics.ops.svc:9090/metrics" in spec["containers"][0]["command"][2]
    compile(spec["containers"][0]["command"][2], "test-metrics", "exec")
    assert (CHART / "templates" / "tests" / "test-metrics.yaml").is_file()


def test_kustomize_and_chart_agree_on_defaults() -> None:
    """Log format, ports and the shard image: the same in both trees."""
    chart = next(o for o in render() if o["kind"] == "Deployment")[
        "spec"]["template"]["spec"]["containers"][0]
    base = yaml.safe_load((REPO / "manifests/operator/deployment.yaml").read_text())[
        "spec"]["template"]["spec"]["containers"][0]
    def log_format(container: dict) -> str:
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        flags = [a.split("=", 1)[1] for a in container["args"] if a.startswith("--log-format=")]
        return flags[0] if flags else env.get("SHARD_OPERATOR_LOG_FORMAT", "text")
    assert log_format(chart) == log_format(base) == "json"
    def shard_image(container: dict) -> str:
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        return env.get("SHARD_OPERATOR_SHARD_IMAGE", DEFAULT_IMAGE)
    assert shard_image(chart) == shard_image(base) == DEFAULT_IMAGE
    assert {p["name"]: p["containerPort"] for p in chart["ports"]} == {
        p["name"]: p["containerPort"] for p in base["ports"]}
