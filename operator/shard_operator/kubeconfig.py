"""Where the API server is and how to authenticate to it: a kubeconfig, or the pod's
service account. No Kubernetes client library: only ``ssl``, ``yaml`` and, for ``exec``
credential plugins, a subprocess.

What a kubeconfig may say, and what is read of it:

- the file: the ``kubeconfig`` argument, else ``$KUBECONFIG`` read at call time (a
  colon-separated list is merged as kubectl does: the first file to name a cluster, user
  or context, or to set ``current-context``, wins), else ``~/.kube/config``;
- the context: the ``context`` argument, else ``current-context``;
- the cluster's ``server``, ``certificate-authority`` / ``-data`` and
  ``insecure-skip-tls-verify``;
- the user's ``client-certificate`` / ``-data`` with ``client-key`` / ``-data``,
  ``token`` / ``tokenFile``, ``username`` / ``password``, and ``exec`` credential plugins
  (``client.authentication.k8s.io/v1`` and ``v1beta1``: the command is run with its
  ``env``; its ``status.token`` or ``clientCertificateData`` / ``clientKeyData`` are
  kept until ``expirationTimestamp``). Legacy ``auth-provider`` entries are refused.

Relative paths (files and an exec command with a ``/``) are taken from the directory of
the kubeconfig file that names them, as kubectl does.

In a pod (``KUBERNETES_SERVICE_HOST`` set and neither a kubeconfig nor a context asked
for), the service account's ``token`` and ``ca.crt`` are used; the token is read again
every :data:`TOKEN_FILE_PERIOD` seconds, since the kubelet rotates it.

Anything missing or malformed raises :class:`ConfigError`, naming what and where.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_FILE_PERIOD = 60.0  # seconds between reads of a token file (the kubelet rotates it)
EXEC_MARGIN = 10.0  # an exec credential is run again this long before it expires
EXEC_TIMEOUT = 60.0
EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")


class ConfigError(Exception):
    """No usable connection settings: says what is missing or wrong, and where."""


# ----- the credentials of one moment --------------------------------------------------

@dataclass(frozen=True, slots=True)
class Secret:
    """What authenticates requests now: a header set and maybe a client certificate."""

    token: str | None = None
    username: str | None = None
    password: str | None = None
    cert_pem: str | None = None
    key_pem: str | None = None
    expires: datetime | None = None  # None: good until invalidated

    def headers(self) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.username is not None:
            pair = f"{self.username}:{self.password or ''}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        return {}


class Auth:
    """A source of :class:`Secret` (static, a token file, an exec plugin)."""

    def fresh(self) -> bool:
        """Whether the secret it last loaded may still be used."""
        return True

    def load(self) -> Secret:
        raise NotImplementedError


@dataclass
class StaticAuth(Auth):
    secret: Secret

    def load(self) -> Secret:
        return self.secret


@dataclass
class TokenFileAuth(Auth):
    """A bearer token in a file (``tokenFile``, the service account's): read again every
    ``period`` seconds."""

    path: Path
    cert_pem: str | None = None
    key_pem: str | None = None
    period: float = TOKEN_FILE_PERIOD
    clock: Callable[[], float] = time.monotonic
    _read_at: float = -1e18

    def fresh(self) -> bool:
        return self.clock() - self._read_at < self.period

    def load(self) -> Secret:
        token = _read_text(self.path, "token file").strip()
        if not token:
            raise ConfigError(f"the token file {self.path} is empty")
        self._read_at = self.clock()
        return Secret(token=token, cert_pem=self.cert_pem, key_pem=self.key_pem)


@dataclass
class ExecAuth(Auth):
    """An ``exec`` credential plugin: run when needed, its answer kept until it expires."""

    spec: Mapping[str, Any]
    base: Path  # the directory of the kubeconfig that names it
    cluster: Mapping[str, Any] = field(default_factory=dict)
    cert_pem: str | None = None  # the kubeconfig's own client certificate, if any
    key_pem: str | None = None
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    _expires: datetime | None = None
    _loaded: bool = False

    def fresh(self) -> bool:
        if not self._loaded:
            return False
        if self._expires is None:
            return True
        return (self._expires - self.now()).total_seconds() > EXEC_MARGIN

    def load(self) -> Secret:
        secret = parse_exec_credential(self._execute(), str(self.spec.get("apiVersion", "")))
        self._expires, self._loaded = secret.expires, True
        if secret.cert_pem is None and self.cert_pem:
            secret = Secret(token=secret.token, cert_pem=self.cert_pem, key_pem=self.key_pem,
                            expires=secret.expires)
        return secret

    def _execute(self) -> str:
        command, api_version = self.spec.get("command"), str(self.spec.get("apiVersion", ""))
        if not command:
            raise ConfigError("exec credential plugin: no command")
        if api_version not in EXEC_API_VERSIONS:
            raise ConfigError(f"exec credential plugin {command}: apiVersion {api_version!r} "
                              f"is not one of {', '.join(EXEC_API_VERSIONS)}")
        if "/" in command and not os.path.isabs(command):
            command = str(self.base / command)
        env = dict(os.environ)
        for item in self.spec.get("env") or []:
            env[str(item["name"])] = str(item["value"])
        info: dict[str, Any] = {"apiVersion": api_version, "kind": "ExecCredential",
                                "spec": {"interactive": False}}
        if self.spec.get("provideClusterInfo") and self.cluster:
            info["spec"]["cluster"] = self.cluster
        env["KUBERNETES_EXEC_INFO"] = json.dumps(info)
        argv = [command, *[str(a) for a in self.spec.get("args") or []]]
        try:
            done = self.run(argv, env=env, capture_output=True, text=True,
                            timeout=EXEC_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
        except FileNotFoundError:
            hint = self.spec.get("installHint")
            raise ConfigError(f"exec credential plugin {command}: not found"
                              + (f" ({hint})" if hint else "")) from None
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ConfigError(f"exec credential plugin {command}: {error}") from None
        if done.returncode != 0:
            raise ConfigError(f"exec credential plugin {command} exited {done.returncode}: "
                              f"{(done.stderr or '').strip()[:500]}")
        return done.stdout


def parse_exec_credential(text: str, api_version: str) -> Secret:
    """The ``ExecCredential`` a plugin printed, as a :class:`Secret`."""
    try:
        answer = json.loads(text)
    except ValueError:
        raise ConfigError("exec credential plugin: its output is not JSON") from None
    if not isinstance(answer, dict) or answer.get("kind") != "ExecCredential":
        raise ConfigError("exec credential plugin: its output is not an ExecCredential")
    if api_version and answer.get("apiVersion") != api_version:
        raise ConfigError(f"exec credential plugin: answered {answer.get('apiVersion')!r}, "
                          f"asked for {api_version!r}")
    status = answer.get("status") or {}
    token = status.get("token") or None
    cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
    if bool(cert) != bool(key):
        raise ConfigError("exec credential plugin: clientCertificateData and clientKeyData "
                          "come together")
    if not token and not cert:
        raise ConfigError("exec credential plugin: neither status.token nor "
                          "status.clientCertificateData")
    expires = None
    if status.get("expirationTimestamp"):
        try:
            expires = datetime.fromisoformat(str(status["expirationTimestamp"]))
        except ValueError:
            raise ConfigError("exec credential plugin: bad expirationTimestamp "
                              f"{status['expirationTimestamp']!r}") from None
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
    return Secret(token=token, cert_pem=cert or None, key_pem=key or None, expires=expires)


# ----- the connection settings --------------------------------------------------------

class KubeConfig:
    """The API server's URL, how to trust it, and the credentials of the moment."""

    def __init__(self, server: str, auth: Auth, *, ca_path: str | None = None,
                 ca_data: str | None = None, insecure: bool = False,
                 namespace: str | None = None, source: str = "") -> None:
        if not server:
            raise ConfigError(f"{source or 'the configuration'}: no server")
        self.server = server.rstrip("/")
        self.auth, self.ca_path, self.ca_data = auth, ca_path, ca_data
        self.insecure, self.namespace, self.source = insecure, namespace, source
        self._secret: Secret | None = None
        self._contexts: dict[tuple[str | None, str | None], ssl.SSLContext] = {}
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """Forget the cached credentials (e.g. after a 401): loaded again on next use."""
        self._secret = None
        if isinstance(self.auth, ExecAuth):
            self.auth._loaded = False
        if isinstance(self.auth, TokenFileAuth):
            self.auth._read_at = -1e18

    def secret(self) -> Secret:
        """The credentials now, loaded again if stale (blocking: an exec plugin runs)."""
        if self._secret is None or not self.auth.fresh():
            self._secret = self.auth.load()
        return self._secret

    async def asecret(self) -> Secret:
        if self._secret is not None and self.auth.fresh():
            return self._secret
        async with self._lock:
            if self._secret is None or not self.auth.fresh():
                self._secret = await asyncio.to_thread(self.auth.load)
            return self._secret

    def ssl_context(self, secret: Secret | None = None) -> ssl.SSLContext:
        """The TLS settings for ``secret``'s client certificate (one context each)."""
        cert, key = (secret.cert_pem, secret.key_pem) if secret else (None, None)
        context = self._contexts.get((cert, key))
        if context is None:
            context = self._contexts[(cert, key)] = make_ssl_context(
                self.ca_path, self.ca_data, self.insecure, cert, key)
        return context

    async def request_settings(self) -> tuple[dict[str, str], ssl.SSLContext]:
        """The headers and TLS context for one request."""
        secret = await self.asecret()
        return secret.headers(), self.ssl_context(secret)

    def connection_info(self, priority: int = 100) -> Any:
        """The same settings as kopf's ``ConnectionInfo`` (for its login handler)."""
        import kopf

        secret = self.secret()
        return kopf.ConnectionInfo(
            server=self.server, ca_path=self.ca_path, ca_data=self.ca_data,
            insecure=self.insecure or None, token=secret.token, scheme="Bearer"
            if secret.token else None, username=secret.username, password=secret.password,
            certificate_data=secret.cert_pem, private_key_data=secret.key_pem,
            default_namespace=self.namespace, priority=priority,
            expiration=_login_expiry(self.auth, secret))


def _login_expiry(auth: Auth, secret: Secret) -> datetime | None:
    """When kopf should log in again: an exec credential's expiry, a token file's next
    read (the kubelet rotates it); never for static settings."""
    if isinstance(auth, ExecAuth) and secret.expires is not None:
        return secret.expires
    if isinstance(auth, TokenFileAuth):
        return datetime.fromtimestamp(time.time() + auth.period, UTC)
    return None


def make_ssl_context(ca_path: str | None, ca_data: str | None, insecure: bool,
                     cert_pem: str | None = None, key_pem: str | None = None
                     ) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=ca_path, cadata=ca_data)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(f"the certificate authority {ca_path or '(data)'}: {error}") from None
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert_pem and key_pem:
        # load_cert_chain reads files only: a private file, removed at once
        with tempfile.TemporaryDirectory(prefix="shard-operator-") as directory:
            cert_file, key_file = Path(directory, "tls.crt"), Path(directory, "tls.key")
            cert_file.write_text(cert_pem)
            key_file.touch(mode=0o600)
            key_file.write_text(key_pem)
            try:
                context.load_cert_chain(str(cert_file), str(key_file))
            except ssl.SSLError as error:
                raise ConfigError(f"the client certificate and key: {error}") from None
    return context


# ----- loading ------------------------------------------------------------------------

def load(kubeconfig: str | None = None, context: str | None = None, *,
         env: Mapping[str, str] | None = None) -> KubeConfig:
    """The settings of ``kubeconfig`` (else $KUBECONFIG, else ~/.kube/config) and its
    ``context``, or, in a pod with neither asked for, of the service account."""
    env = os.environ if env is None else env
    if env.get("KUBERNETES_SERVICE_HOST") and not kubeconfig and not env.get("KUBECONFIG") \
            and not context:
        return load_in_cluster(env)
    return load_kubeconfig(kubeconfig_paths(kubeconfig, env), context)


def kubeconfig_paths(kubeconfig: str | None, env: Mapping[str, str]) -> list[Path]:
    if kubeconfig:
        return [Path(kubeconfig).expanduser()]
    listed = [p for p in (env.get("KUBECONFIG") or "").split(os.pathsep) if p]
    if listed:
        return [Path(p).expanduser() for p in listed]
    return [Path(env.get("HOME") or Path.home(), ".kube", "config")]


def load_in_cluster(env: Mapping[str, str], root: str = SERVICE_ACCOUNT_DIR) -> KubeConfig:
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConfigError("in a pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
                          "must both be set")
    token, ca = Path(root, "token"), Path(root, "ca.crt")
    if not token.is_file():
        raise ConfigError(f"in a pod: no service account token at {token}")
    if not ca.is_file():
        raise ConfigError(f"in a pod: no service account CA at {ca}")
    host = f"[{host}]" if ":" in host else host
    namespace_file = Path(root, "namespace")
    namespace = namespace_file.read_text().strip() if namespace_file.is_file() else None
    config = KubeConfig(f"https://{host}:{port}", TokenFileAuth(token), ca_path=str(ca),
                        namespace=namespace or None, source="the service account")
    config.secret()  # fails now, not at the first request, if the token cannot be read
    return config


@dataclass(frozen=True, slots=True)
class _Entry:
    value: Mapping[str, Any]
    base: Path  # directory of the file it came from


def merge(documents: list[tuple[Path, Mapping[str, Any]]]
          ) -> tuple[str | None, dict[str, dict[str, _Entry]]]:
    """kubectl's merge of several kubeconfigs: ``current-context`` and every named
    cluster, user and context from the first file that has it."""
    current: str | None = None
    named: dict[str, dict[str, _Entry]] = {"clusters": {}, "users": {}, "contexts": {}}
    for path, document in documents:
        if not current and document.get("current-context"):
            current = str(document["current-context"])
        for section, inner in (("clusters", "cluster"), ("users", "user"),
                               ("contexts", "context")):
            for item in document.get(section) or []:
                if not isinstance(item, dict) or "name" not in item:
                    raise ConfigError(f"{path}: an entry of {section} without a name")
                named[section].setdefault(str(item["name"]), _Entry(
                    item.get(inner) or {}, path.parent))
    return current, named


def load_kubeconfig(paths: list[Path], context: str | None = None) -> KubeConfig:
    documents: list[tuple[Path, Mapping[str, Any]]] = []
    for path in paths:
        if not path.is_file():
            if len(paths) == 1:
                raise ConfigError(f"no kubeconfig at {path} (give --kubeconfig or set "
                                  "KUBECONFIG)")
            continue  # kubectl skips missing files of a list
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"cannot read the kubeconfig {path}: {error}") from None
        if not isinstance(document, dict):
            raise ConfigError(f"{path} is not a kubeconfig (not a mapping)")
        documents.append((path, document))
    where = ":".join(str(p) for p in paths)
    if not documents:
        raise ConfigError(f"none of the kubeconfigs {where} exists")
    current, named = merge(documents)
    name = context or current
    if not name:
        raise ConfigError(f"{where}: no current-context; give a context")
    if name not in named["contexts"]:
        raise ConfigError(f"{where}: no context {name!r}")
    chosen = named["contexts"][name].value
    cluster_name, user_name = chosen.get("cluster"), chosen.get("user")
    if not cluster_name or cluster_name not in named["clusters"]:
        raise ConfigError(f"{where}: context {name!r} names no known cluster "
                          f"({cluster_name!r})")
    cluster = named["clusters"][cluster_name]
    user = named["users"].get(user_name or "", _Entry({}, cluster.base))
    if user_name and user_name not in named["users"]:
        raise ConfigError(f"{where}: context {name!r} names no known user ({user_name!r})")
    source = f"{where} context {name!r}"
    settings = cluster.value
    server = str(settings.get("server") or "")
    if not server:
        raise ConfigError(f"{source}: cluster {cluster_name!r} has no server")
    ca_path = _path(settings.get("certificate-authority"), cluster.base)
    ca_data = _decoded(settings.get("certificate-authority-data"),
                       f"{source}: certificate-authority-data")
    if ca_path and ca_data:
        ca_path = None  # kubectl: the data wins
    config = KubeConfig(server, _user_auth(user, source, dict(settings)), ca_path=ca_path,
                        ca_data=ca_data, insecure=bool(settings.get("insecure-skip-tls-verify")),
                        namespace=chosen.get("namespace"), source=source)
    if not isinstance(config.auth, ExecAuth):
        config.secret()  # a missing token file fails now, not at the first request
    return config


def _user_auth(user: _Entry, source: str, cluster: dict[str, Any]) -> Auth:
    settings, base = user.value, user.base
    if settings.get("auth-provider"):
        provider = (settings["auth-provider"] or {}).get("name", "?")
        raise ConfigError(f"{source}: auth-provider {provider!r} is not supported; use an "
                          "exec credential plugin")
    cert = _pem(settings, "client-certificate", base, source)
    key = _pem(settings, "client-key", base, source)
    if bool(cert) != bool(key):
        raise ConfigError(f"{source}: client-certificate and client-key come together")
    if settings.get("exec"):
        info = {k: v for k, v in cluster.items() if k in (
            "server", "certificate-authority-data", "insecure-skip-tls-verify")}
        return ExecAuth(settings["exec"], base, info, cert, key)
    if settings.get("token"):
        return StaticAuth(Secret(token=str(settings["token"]), cert_pem=cert, key_pem=key))
    if settings.get("tokenFile"):
        return TokenFileAuth(Path(_path(settings["tokenFile"], base)), cert, key)
    if settings.get("username") is not None:
        return StaticAuth(Secret(username=str(settings["username"]),
                                 password=str(settings.get("password") or ""),
                                 cert_pem=cert, key_pem=key))
    return StaticAuth(Secret(cert_pem=cert, key_pem=key))


def _path(value: Any, base: Path) -> Any:
    if not value:
        return None
    path = Path(str(value)).expanduser()
    return str(path if path.is_absolute() else base / path)


def _decoded(value: Any, what: str) -> str | None:
    if not value:
        return None
    try:
        return base64.b64decode(str(value), validate=False).decode()
    except (ValueError, UnicodeError):
        raise ConfigError(f"{what}: not base64 PEM") from None


def _pem(settings: Mapping[str, Any], name: str, base: Path, source: str) -> str | None:
    data = _decoded(settings.get(f"{name}-data"), f"{source}: {name}-data")
    if data:
        return data
    path = _path(settings.get(name), base)
    return _read_text(Path(path), name) if path else None


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read the {what} {path}: {error.strerror or error}") from None


async def kopf_login(**_: Any) -> Any:
    """kopf's login handler: the same settings as :func:`load` (no client library for
    kopf to piggyback on)."""
    config = await asyncio.to_thread(load)
    return await asyncio.to_thread(config.connection_info)
