"""The kubeconfig loader without a cluster: files merged as kubectl merges them, the
context chosen, relative paths, each kind of credential (token, token file, basic,
client certificate, exec plugin with expiry), the pod's service account with its
rotating token, kopf's ConnectionInfo, and a clear ConfigError for what is missing."""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from shard_operator import kubeconfig
from shard_operator.kubeconfig import ConfigError, load, parse_exec_credential


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def config(*, server: str = "https://127.0.0.1:6443", user: dict[str, Any] | None = None,
           cluster: dict[str, Any] | None = None, name: str = "c",
           current: str | None = "c", namespace: str | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {"cluster": name, "user": name}
    if namespace:
        context["namespace"] = namespace
    document: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": name, "user": user if user is not None else {"token": "t"}}],
        "contexts": [{"name": name, "context": context}]}
    if current:
        document["current-context"] = current
    return document


def write(path: Path, document: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A self-signed certificate and its key (PEM), made with openssl."""
    # openssl is one of the project's required tools (the local cluster's PKI, .ci/run):
    # its absence fails, never skips.
    assert shutil.which("openssl") is not None, "openssl is required (not on PATH)"
    directory = tmp_path_factory.mktemp("pki")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(directory / "k"),
                    "-out", str(directory / "c"), "-days", "1", "-subj", "/CN=test"],
                   check=True, capture_output=True)
    return {"cert": (directory / "c").read_text(), "key": (directory / "k").read_text()}


def test_token_context_namespace_and_headers(tmp_path: Path) -> None:
    path = write(tmp_path / "config", config(namespace="apps"))
    loaded = load(str(path), env={})
    assert loaded.server == "https://127.0.0.1:6443" and loaded.namespace == "apps"
    assert loaded.secret().headers() == {"Authorization": "Bearer t"}
    assert loaded.ca_path is None and loaded.insecure is False


def test_kubeconfig_env_is_read_at_call_time_and_merged(tmp_path: Path) -> None:
    first = write(tmp_path / "a", config(name="one", current="two",
                                         user={"token": "from-a"}))
    second = write(tmp_path / "b", {**config(name="two", user={"token": "from-b"},
                                             server="https://127.0.0.1:1"),
                                    "current-context": "one"})
    doubled = config(name="one", user={"token": "shadowed"}, server="https://127.0.0.1:2")
    third = write(tmp_path / "c", doubled)
    env = {"KUBECONFIG": f"{first}:{tmp_path / 'missing'}:{second}:{third}"}
    chosen = load(env=env)  # current-context from the first file that sets one: "two"
    assert chosen.server == "https://127.0.0.1:1"
    assert chosen.secret().token == "from-b"
    other = load(context="one", env=env)  # the first file naming "one" wins
    assert other.server == "https://127.0.0.1:6443" and other.secret().token == "from-a"


def test_home_config_when_nothing_is_given(tmp_path: Path) -> None:
    write(tmp_path / ".kube" / "config", config(user={"token": "home"}))
    assert load(env={"HOME": str(tmp_path)}).secret().token == "home"


@pytest.mark.parametrize(("document", "context", "message"), [
    (None, None, "no kubeconfig at"),
    (config(current=None), None, "no current-context"),
    (config(), "absent", "no context 'absent'"),
    ({**config(), "clusters": []}, None, "names no known cluster"),
    ({**config(), "users": []}, None, "names no known user"),
    (config(server=""), None, "has no server"),
    (config(user={"auth-provider": {"name": "gcp"}}), None, "auth-provider 'gcp'"),
    (config(user={"tokenFile": "absent-token"}), None, "cannot read the token file"),
    (config(user={"client-certificate-data": b64("x")}), None, "come together"),
])
def test_clear_errors(tmp_path: Path, document: dict[str, Any] | None, context: str | None,
                      message: str) -> None:
    path = tmp_path / "config"
    if document is not None:
        write(path, document)
    with pytest.raises(ConfigError, match=message):
        load(str(path), context, env={})


def test_relative_paths_are_from_the_kubeconfig_and_token_files_are_reread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "token").write_text("first\n")
    path = write(tmp_path / "sub" / "config", config(
        user={"tokenFile": "token"}, cluster={"certificate-authority": "ca.crt",
                                              "insecure-skip-tls-verify": True}))
    loaded = load(str(path), env={})
    assert loaded.ca_path == str(tmp_path / "sub" / "ca.crt") and loaded.insecure
    assert loaded.secret().token == "first"
    (tmp_path / "sub" / "token").write_text("second\n")
    assert loaded.secret().token == "first"  # within the period: cached
    assert isinstance(loaded.auth, kubeconfig.TokenFileAuth)
    monkeypatch.setattr(loaded.auth, "period", 0.0)
    assert loaded.secret().token == "second"


def test_basic_auth_header(tmp_path: Path) -> None:
    path = write(tmp_path / "config", config(user={"username": "u", "password": "p"}))
    assert load(str(path), env={}).secret().headers() == {
        "Authorization": "Basic " + b64("u:p")}


def test_ca_data_and_client_certificate_make_an_ssl_context(tmp_path: Path,
                                                            pki: dict[str, str]) -> None:
    (tmp_path / "client.key").write_text(pki["key"])
    path = write(tmp_path / "config", config(
        cluster={"certificate-authority-data": b64(pki["cert"])},
        user={"client-certificate-data": b64(pki["cert"]), "client-key": "client.key"}))
    loaded = load(str(path), env={})
    assert loaded.ca_data == pki["cert"]
    secret = loaded.secret()
    assert secret.cert_pem == pki["cert"] and secret.key_pem == pki["key"]
    assert secret.headers() == {}
    context = loaded.ssl_context(secret)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert loaded.ssl_context(secret) is context  # one per certificate
    assert len(context.get_ca_certs()) == 1


def test_a_bad_ca_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="certificate authority"):
        kubeconfig.make_ssl_context(None, "not a certificate", False)


# ----- exec credential plugins ------------------------------------------------------------

PLUGIN = """#!{python}
import json, os, sys
count = os.path.join(os.path.dirname(sys.argv[0]), "runs")
runs = int(open(count).read()) + 1 if os.path.exists(count) else 1
open(count, "w").write(str(runs))
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
print(json.dumps({{"apiVersion": info["apiVersion"], "kind": "ExecCredential",
                  "status": {{"token": os.environ["PREFIX"] + sys.argv[1] + str(runs),
                             "expirationTimestamp": os.environ["EXPIRES"]}}}}))
"""


def plugin(tmp_path: Path, api_version: str, expires: str) -> Path:
    script = tmp_path / "bin" / "credential"
    script.parent.mkdir()
    script.write_text(PLUGIN.format(python=sys.executable))
    script.chmod(0o755)
    return write(tmp_path / "config", config(user={"exec": {
        "apiVersion": api_version, "command": "bin/credential", "args": ["-"],
        "env": [{"name": "PREFIX", "value": "tok"}, {"name": "EXPIRES", "value": expires}],
        "provideClusterInfo": True}}))


@pytest.mark.parametrize("api_version", kubeconfig.EXEC_API_VERSIONS)
async def test_exec_plugin_runs_with_env_and_is_cached_until_expiry(
        tmp_path: Path, api_version: str) -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)
    loaded = load(str(plugin(tmp_path, api_version, expires.isoformat())), env={})
    headers, _ = await loaded.request_settings()
    assert headers == {"Authorization": "Bearer tok-1"}
    assert (await loaded.asecret()).token == "tok-1"  # cached
    assert loaded.connection_info().expiration == expires  # kopf logs in again then
    assert isinstance(loaded.auth, kubeconfig.ExecAuth)
    loaded.auth.now = lambda: expires - timedelta(seconds=5)  # within the margin
    assert (await loaded.asecret()).token == "tok-2"
    loaded.invalidate()  # e.g. after a 401
    assert loaded.secret().token == "tok-3"


def test_exec_plugin_failures_are_config_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "config", config(user={"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": "/absent/plugin",
        "installHint": "install the plugin"}}))
    with pytest.raises(ConfigError, match=r"not found \(install the plugin\)"):
        load(str(path), env={}).secret()
    path = write(tmp_path / "config", config(user={"exec": {
        "apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "x"}}))
    with pytest.raises(ConfigError, match="is not one of"):
        load(str(path), env={}).secret()
    path = write(tmp_path / "config", config(user={"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
        "args": ["-c", "import sys; sys.stderr.write('denied'); sys.exit(4)"]}}))
    with pytest.raises(ConfigError, match="exited 4: denied"):
        load(str(path), env={}).secret()


@pytest.mark.parametrize(("status", "message"), [
    ({}, "neither status.token"),
    ({"clientCertificateData": "c"}, "come together"),
    ({"token": "t", "expirationTimestamp": "soon"}, "bad expirationTimestamp"),
])
def test_exec_credential_parsing(status: dict[str, Any], message: str) -> None:
    text = json.dumps({"apiVersion": "client.authentication.k8s.io/v1",
                       "kind": "ExecCredential", "status": status})
    with pytest.raises(ConfigError, match=message):
        parse_exec_credential(text, "client.authentication.k8s.io/v1")


def test_exec_credential_with_certificate_and_naive_expiry() -> None:
    secret = parse_exec_credential(json.dumps({
        "apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
        "status": {"clientCertificateData": "C", "clientKeyData": "K",
                   "expirationTimestamp": "2030-01-01T00:00:00"}}),
        "client.authentication.k8s.io/v1beta1")
    assert (secret.cert_pem, secret.key_pem, secret.token) == ("C", "K", None)
    assert secret.expires == datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(ConfigError, match="answered"):
        parse_exec_credential(json.dumps({"apiVersion": "client.authentication.k8s.io/v1",
                                          "kind": "ExecCredential", "status": {"token": "t"}}),
                              "client.authentication.k8s.io/v1beta1")


# ----- in a pod ---------------------------------------------------------------------------

def service_account(tmp_path: Path, pki: dict[str, str]) -> Path:
    root = tmp_path / "sa"
    root.mkdir()
    (root / "token").write_text("sa-1")
    (root / "ca.crt").write_text(pki["cert"])
    (root / "namespace").write_text("ops\n")
    return root


def test_in_cluster_service_account_with_rotating_token(
        tmp_path: Path, pki: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    root = service_account(tmp_path, pki)
    monkeypatch.setattr(kubeconfig, "SERVICE_ACCOUNT_DIR", str(root))
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    loaded = kubeconfig.load_in_cluster(env, str(root))
    assert loaded.server == "https://[fd00::1]:443" and loaded.namespace == "ops"
    assert loaded.ca_path == str(root / "ca.crt") and loaded.secret().token == "sa-1"
    (root / "token").write_text("sa-2")
    assert isinstance(loaded.auth, kubeconfig.TokenFileAuth)
    loaded.auth.clock = lambda: 1e12  # a period later
    assert loaded.secret().token == "sa-2"
    info = loaded.connection_info()
    assert info.token == "sa-2" and info.ca_path == str(root / "ca.crt")
    assert info.expiration is not None and info.default_namespace == "ops"


def test_in_cluster_is_chosen_only_when_nothing_else_is_asked(
        tmp_path: Path, pki: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    root = service_account(tmp_path, pki)
    monkeypatch.setattr(kubeconfig, "load_in_cluster",
                        lambda env: kubeconfig.KubeConfig(
                            "https://in-cluster:1", kubeconfig.StaticAuth(
                                kubeconfig.Secret()), source=str(root)))
    pod = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert load(env=pod).server == "https://in-cluster:1"
    path = write(tmp_path / "config", config())
    assert load(env={**pod, "KUBECONFIG": str(path)}).server == "https://127.0.0.1:6443"
    assert load(str(path), env=pod).server == "https://127.0.0.1:6443"


def test_in_cluster_errors_name_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KUBERNETES_SERVICE_PORT"):
        kubeconfig.load_in_cluster({"KUBERNETES_SERVICE_HOST": "h"}, str(tmp_path))
    with pytest.raises(ConfigError, match="no service account token at"):
        kubeconfig.load_in_cluster({"KUBERNETES_SERVICE_HOST": "h",
                                    "KUBERNETES_SERVICE_PORT": "1"}, str(tmp_path))


async def test_kopf_login_uses_the_same_loader(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "config", config(user={"token": "kopf"},
                                             cluster={"insecure-skip-tls-verify": True}))
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    info = await kubeconfig.kopf_login()
    assert (info.server, info.token, info.scheme, info.insecure, info.expiration) == (
        "https://127.0.0.1:6443", "kopf", "Bearer", True, None)
