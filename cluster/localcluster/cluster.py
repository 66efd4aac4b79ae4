"""A real Kubernetes control plane on this machine: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, KWOK simulating nodes and pod lifecycle, and
(where the machine allows it) one real node, containerd and a kubelet (``node.py``).

Every listener is on 127.0.0.1. Everything lives under one directory (``.cluster/`` at
the repository root by default): PKI, etcd data, logs, kubeconfigs, ``state.json``
with ports and pids, and ``bin/`` links to the tools.

Pod and Service IPs of the KWOK nodes are simulated addresses: nothing listens there,
and nothing here connects to them. There is no kube-proxy and no cluster DNS.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from . import storage
from .node import NodePorts, RealNode, missing_requirements
from .pki import PKI
from .procs import processes_naming
from .tools import REPO_ROOT, ensure_tools

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
REAL_NODE_COMPONENTS = ("containerd", "kubelet", "local-path-provisioner")
COMPONENTS = CONTROL_PLANE + REAL_NODE_COMPONENTS
NODE_NAMES = ("kwok-node-0", "kwok-node-1")
SERVICE_CIDR = "10.96.0.0/16"
# Users of the static token file: name -> groups.
USERS = {
    "admin": ("system:masters",),
    "system:kube-controller-manager": (),
    "system:kube-scheduler": (),
    "kwok-controller": ("system:masters",),  # KWOK_USER
    storage.USER: ("system:masters",),
}


class ClusterError(RuntimeError):
    """The cluster could not be started, stopped or reached."""


def real_node_mode() -> str:
    """``required`` (the default under CI), ``auto`` (where the machine allows it) or
    ``off``, from ``SHARD_OPERATOR_REAL_NODE``."""
    mode = os.environ.get("SHARD_OPERATOR_REAL_NODE", "").strip().lower()
    if not mode:
        return "required" if os.environ.get("CI", "").lower() in ("1", "true") else "auto"
    if mode not in ("required", "auto", "off"):
        raise ClusterError(f"SHARD_OPERATOR_REAL_NODE={mode!r}: use required, auto or off")
    return mode


def _log(message: str) -> None:
    print(f"localcluster: {message}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


@dataclass
class ComponentHealth:
    name: str
    pid: int | None
    running: bool
    healthy: bool
    detail: str = ""


class LocalCluster:
    """Start, stop and inspect the local control plane rooted at ``directory``.

    The real node is one per machine (its bridge, routes and cgroup root are named):
    only the default cluster (``.cluster``) starts it unless ``with_real_node`` says
    otherwise; private clusters of tests and benchmarks run KWOK only."""

    def __init__(self, directory: Path | None = None, with_real_node: bool | None = None
                 ) -> None:
        self.directory = Path(directory or REPO_ROOT / ".cluster").resolve()
        self.with_real_node = (self.directory == (REPO_ROOT / ".cluster").resolve()
                               if with_real_node is None else with_real_node)
        self.pki = PKI(self.directory / "pki")
        self.state_file = self.directory / "state.json"
        self.logs = self.directory / "logs"
        self.node = RealNode(self.directory, self.pki)

    # ----- paths and state -------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (user ``admin`` in ``system:masters``)."""
        return self.directory / "kubeconfig"

    @property
    def bin_dir(self) -> Path:
        return self.directory / "bin"

    def _read_state(self) -> dict:
        if not self.state_file.is_file():
            return {}
        try:
            return json.loads(self.state_file.read_text())
        except json.JSONDecodeError:
            return {}

    def _write_state(self, state: dict) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
        tmp.replace(self.state_file)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self._read_state()['ports']['apiserver']}"

    @property
    def real_node(self) -> dict:
        """``{"enabled": bool, "name": ..., "missing": [...]}`` of the running cluster."""
        return self._read_state().get("real_node", {"enabled": False, "missing": []})

    def components(self) -> tuple[str, ...]:
        """The components this cluster runs (the real node's only when enabled)."""
        return COMPONENTS if self.real_node.get("enabled") else CONTROL_PLANE

    # ----- public API ------------------------------------------------------------------

    def up(self, timeout: float = 180.0) -> None:
        """Start the cluster; a no-op if it already runs; a stale one is replaced."""
        state = self._read_state()
        if state:
            unhealthy = [c.name for c in self.health() if not c.healthy]
            if not unhealthy:
                _log(f"cluster already running ({self.server}); nothing to do")
                return
            _log(f"found a stale or half-started cluster (not healthy: {', '.join(unhealthy)}); "
                 "cleaning it up and starting a new one")
        self._kill_strays()
        self._teardown_node()
        self._wipe()
        mode = real_node_mode() if self.with_real_node else "off"
        tools = ensure_tools()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self._link_tools(tools)
        self.pki.create()
        tokens = {user: secrets.token_hex(16) for user in USERS}
        self._write_token_file(tokens)
        ports = {name: _free_port() for name in (
            "etcd", "etcd_peer", "apiserver", "controller_manager", "scheduler", "kwok",
            "kubelet", "kubelet_healthz")}
        missing = [] if mode == "off" else missing_requirements()
        if mode == "required" and missing:
            raise ClusterError("the real node cannot run here (SHARD_OPERATOR_REAL_NODE="
                               "required, the default under CI); missing: " + "; ".join(missing))
        enabled = mode != "off" and not missing
        if not enabled:
            _log("no real node: " + ("SHARD_OPERATOR_REAL_NODE=off" if mode == "off" else
                 "missing " + "; ".join(missing)) + ". Every pod is a KWOK simulation: the "
                 "tests that need running containers are not run, and the demo's shards "
                 "answer nothing.")
        real_node = {"enabled": enabled, "name": self.node.name if enabled else None,
                     "missing": missing, "mode": mode}
        storage_tools = str(ensure_tools("storage")) if enabled else None
        self._write_state({"tools": str(tools), "storage_tools": storage_tools, "ports": ports,
                           "tokens": tokens, "pids": {}, "real_node": real_node})
        for user in USERS:
            self._write_kubeconfig(self._kubeconfig_path(user), tokens[user])
        if enabled:
            self.node.prepare(f"https://127.0.0.1:{ports['apiserver']}",
                              NodePorts(ports["kubelet"], ports["kubelet_healthz"]))
        try:
            self.start(timeout=timeout, first_start=True)
        except Exception:
            _log(f"start failed; logs are in {self.logs}")
            raise

    def start(self, timeout: float = 180.0, first_start: bool = False) -> None:
        """Start every component (after ``stop``), keeping etcd's data."""
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        for name in self.components():
            if name == "containerd":
                self.node.setup_host()
            if name == "local-path-provisioner" and first_start:
                self._apply_storage()
            self._start_component(name)
            if name == "etcd":
                self._wait(lambda: self._component_healthy("etcd"), deadline, "etcd health")
            elif name == "kube-apiserver":
                self._wait(lambda: self._component_healthy("kube-apiserver"), deadline,
                           "kube-apiserver /readyz")
                if first_start:
                    self._create_nodes()
            elif name == "containerd":
                self._wait(lambda: self._component_healthy("containerd"), deadline,
                           "containerd")
                if first_start:
                    t0 = time.monotonic()
                    imported = self.node.import_images()
                    _log(f"imported {len(imported)} images into the real node's containerd "
                         f"in {time.monotonic() - t0:.1f} s: {', '.join(imported)}")
        expected = len(NODE_NAMES) + (1 if self.real_node.get("enabled") else 0)
        running = self.components()
        self._wait(lambda: all(self._component_running(n) for n in running)
                   and self._nodes_ready(expected), deadline, f"{expected} Ready nodes")
        self._wait(lambda: all(c.healthy for c in self.health()), deadline,
                   "all components healthy")
        # The controller manager's ServiceAccount controller is running: until it is, a
        # new namespace has no `default` account and every pod in it is refused.
        self._wait(lambda: self._has_default_account("default"), deadline,
                   "the default ServiceAccount (kube-controller-manager's controllers)")
        node = self.real_node
        where = (f"real node {node['name']} (containerd + kubelet) beside the KWOK nodes"
                 if node.get("enabled") else "KWOK nodes only")
        _log(f"cluster is up in {time.monotonic() - started:.1f} s: {self.server}; {where}")

    def stop(self) -> None:
        """Stop every component, keeping etcd's data, ports and credentials."""
        state = self._read_state()
        for name in reversed(COMPONENTS):
            self._stop_pid(state.get("pids", {}).get(name), name)
        state["pids"] = {}
        if state:
            self._write_state(state)

    def down(self) -> None:
        """Stop everything and remove the cluster's directory."""
        self.stop()
        self._teardown_node()
        self._kill_strays()
        self._wipe()
        _log("cluster removed")

    def _teardown_node(self) -> None:
        """Remove what the real node made outside its directory (links, routes,
        cgroups, mounts, containers); raise if anything is left."""
        if not self.node.root.exists() or not self.with_real_node:
            return
        leftovers = self.node.teardown()
        if leftovers:
            raise ClusterError("the real node left behind: " + "; ".join(leftovers))

    def restart_component(self, name: str, timeout: float = 60.0) -> None:
        """Stop and start one component (e.g. ``kube-apiserver``) with the same flags."""
        if name not in self.components():
            raise ValueError(f"unknown component {name!r}; one of "
                             f"{', '.join(self.components())}")
        self._stop_pid(self._read_state().get("pids", {}).get(name), name)
        self._start_component(name)
        self._wait(lambda: self._component_healthy(name), time.monotonic() + timeout,
                   f"{name} health")

    def restart_apiserver(self, timeout: float = 60.0) -> None:
        self.restart_component("kube-apiserver", timeout)

    def create_namespace(self, name: str, labels: dict[str, str] | None = None,
                         timeout: float = 120.0) -> None:
        """Create (or update) a namespace and wait for its `default` ServiceAccount, without which
        the API server refuses every pod in it (the controller manager adds the account
        shortly after the namespace; later after an API server restart)."""
        metadata: dict[str, object] = {"name": name}
        if labels:
            metadata["labels"] = labels
        self.kubectl("apply", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}))
        self._wait(lambda: self._has_default_account(name), time.monotonic() + timeout,
                   f"the default ServiceAccount in namespace {name}")

    def _has_default_account(self, namespace: str) -> bool:
        return self.kubectl("get", "serviceaccount", "default", "-n", namespace,
                            "-o", "name", check=False).returncode == 0

    def health(self) -> list[ComponentHealth]:
        """Running and healthy, per component."""
        pids = self._read_state().get("pids", {})
        report = []
        for name in self.components():
            pid = pids.get(name)
            running = bool(pid) and _pid_alive(pid)
            healthy, detail = self._probe(name) if running else (False, "not running")
            report.append(ComponentHealth(name, pid, running, healthy, detail))
        return report

    def is_healthy(self) -> bool:
        return bool(self._read_state()) and all(c.healthy for c in self.health())

    def token(self, user: str = "admin") -> str:
        return self._read_state()["tokens"][user]

    def kubectl(self, *args: str, input: str | None = None, check: bool = True
                ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster as admin."""
        return subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            input=input, capture_output=True, text=True, check=check, timeout=120,
        )

    def stray_processes(self) -> list[int]:
        """Pids of any process whose command line names this cluster's directory."""
        marker = str(self.directory) + "/"
        return [pid for pid in processes_naming(marker) if _pid_alive(pid)]

    # ----- components ------------------------------------------------------------------

    def _kubeconfig_path(self, user: str) -> Path:
        if user == "admin":
            return self.kubeconfig
        return self.directory / "kubeconfigs" / f"{user.replace(':', '-')}.kubeconfig"

    def _argv(self, name: str) -> list[str]:
        state = self._read_state()
        tools, ports = Path(state["tools"]), state["ports"]
        d, pki = self.directory, self.pki
        if name == "etcd":
            client = f"http://127.0.0.1:{ports['etcd']}"
            peer = f"http://127.0.0.1:{ports['etcd_peer']}"
            return [str(tools / "etcd"), "--name=local", f"--data-dir={d / 'etcd'}",
                    f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
                    f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
                    f"--initial-cluster=local={peer}", "--log-level=warn"]
        if name == "kube-apiserver":
            return [str(tools / "kube-apiserver"),
                    f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
                    "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
                    f"--secure-port={ports['apiserver']}",
                    # 127.0.0.1 is not a valid Endpoints address; nothing in the
                    # cluster needs the kubernetes Service's endpoints.
                    "--endpoint-reconciler-type=none",
                    f"--tls-cert-file={pki.serving_cert}",
                    f"--tls-private-key-file={pki.serving_key}",
                    f"--client-ca-file={pki.ca_cert}",
                    f"--token-auth-file={d / 'tokens.csv'}",
                    "--authorization-mode=RBAC",
                    f"--service-account-key-file={pki.sa_pub}",
                    f"--service-account-signing-key-file={pki.sa_key}",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--allow-privileged=true", "--profiling=false",
                    f"--cert-dir={d / 'apiserver-certs'}", "--v=1",
                    *self._kubelet_client_flags()]
        if name == "kube-controller-manager":
            kc = self._kubeconfig_path("system:kube-controller-manager")
            return [str(tools / "kube-controller-manager"), f"--kubeconfig={kc}",
                    f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
                    "--bind-address=127.0.0.1", f"--secure-port={ports['controller_manager']}",
                    f"--cert-dir={d / 'kcm-certs'}", "--leader-elect=false",
                    "--use-service-account-credentials=true",
                    f"--service-account-private-key-file={pki.sa_key}",
                    f"--root-ca-file={pki.ca_cert}", "--controllers=*", "--v=1"]
        if name == "kube-scheduler":
            kc = self._kubeconfig_path("system:kube-scheduler")
            return [str(tools / "kube-scheduler"), f"--kubeconfig={kc}",
                    f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
                    "--bind-address=127.0.0.1", f"--secure-port={ports['scheduler']}",
                    f"--cert-dir={d / 'scheduler-certs'}", "--leader-elect=false", "--v=1"]
        if name == "containerd":
            return self.node.containerd_argv()
        if name == "kubelet":
            return self.node.kubelet_argv(tools / "kubelet")
        if name == "local-path-provisioner":
            return storage.argv(Path(state["storage_tools"]) / "local-path-provisioner",
                                self._kubeconfig_path(storage.USER))
        if name == "kwok":
            return [str(tools / "kwok"),
                    f"--kubeconfig={self._kubeconfig_path('kwok-controller')}",
                    "--manage-all-nodes=false",
                    "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                    "--node-ip=127.0.0.1",
                    # Renew node Leases, so the node lifecycle controller keeps the
                    # nodes (and their pods) Ready.
                    "--node-lease-duration-seconds=40",
                    f"--server-address=127.0.0.1:{ports['kwok']}",
                    f"--config={d / 'kwok.yaml'}"]
        raise ValueError(name)

    def _apply_storage(self) -> None:
        """The provisioner's namespace, account, configuration and StorageClass."""
        objects = storage.manifest(self.node.name, self.directory,
                                   self.node.image_ref("shard-server"))
        storage.volumes_dir(self.directory).mkdir(parents=True, exist_ok=True)
        result = self.kubectl("apply", "-f", "-", input=json.dumps(objects), check=False)
        if result.returncode != 0:
            raise ClusterError(f"creating the local-path storage failed: {result.stderr}")

    def _kubelet_client_flags(self) -> list[str]:
        """How the apiserver reaches the real node's kubelet: by its Hostname address
        only (the node name resolves to 127.0.0.1), verifying its serving certificate."""
        if not self.real_node.get("enabled"):
            return []
        pki = self.pki.directory
        return ["--kubelet-preferred-address-types=Hostname",
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                f"--kubelet-certificate-authority={self.pki.ca_cert}"]

    def _start_component(self, name: str) -> None:
        if name == "kwok":
            # An explicit KWOK configuration: never read ~/.kwok from the user. KWOK
            # v0.7.0 plays Pod stages (create, ready, delete) with 4 workers by default,
            # about 20 deletes a second here; 16 lets it remove 100 terminating Pods at
            # the apiserver's pace instead (docs/performance.md, recovery).
            (self.directory / "kwok.yaml").write_text(
                "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\n"
                "options:\n  podPlayStageParallelism: 16\n")
        log = open(self.logs / f"{name}.log", "ab")
        try:
            process = subprocess.Popen(
                self._argv(name), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.directory,
            )
        finally:
            log.close()
        state = self._read_state()
        state.setdefault("pids", {})[name] = process.pid
        self._write_state(state)

    def _stop_pid(self, pid: int | None, name: str, grace: float = 10.0) -> None:
        if not pid or not _pid_alive(pid):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.05)
        if _pid_alive(pid):
            _log(f"{name} (pid {pid}) ignored SIGTERM for {grace:.0f} s; killing it")
            os.kill(pid, signal.SIGKILL)
            while _pid_alive(pid):
                time.sleep(0.05)
        self._reap(pid)

    @staticmethod
    def _reap(pid: int) -> None:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass

    def _kill_strays(self) -> None:
        strays = self.stray_processes()
        if strays:
            _log(f"stopping leftover processes of {self.directory}: {strays}")
        for pid in strays:
            self._stop_pid(pid, f"pid {pid}", grace=5.0)

    def _wipe(self) -> None:
        if self.directory.exists():
            subprocess.run(["rm", "-rf", str(self.directory)], check=True)

    # ----- set-up helpers --------------------------------------------------------------

    def _link_tools(self, tools: Path) -> None:
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        for binary in tools.iterdir():
            if binary.is_file() and os.access(binary, os.X_OK) and not binary.name.endswith(".tmp"):
                link = self.bin_dir / binary.name
                link.unlink(missing_ok=True)
                link.symlink_to(binary)

    def _write_token_file(self, tokens: dict[str, str]) -> None:
        lines = []
        for index, (user, groups) in enumerate(USERS.items()):
            group_field = f',"{",".join(groups)}"' if groups else ""
            lines.append(f"{tokens[user]},{user},uid-{index}{group_field}")
        path = self.directory / "tokens.csv"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)

    def _write_kubeconfig(self, path: Path, token: str) -> None:
        ports = self._read_state()["ports"]
        ca = base64.b64encode(self.pki.ca_cert.read_bytes()).decode()
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "local",
            "clusters": [{"name": "local", "cluster": {
                "server": f"https://127.0.0.1:{ports['apiserver']}",
                "certificate-authority-data": ca}}],
            "users": [{"name": "local", "user": {"token": token}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "local"}}],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)

    def _create_nodes(self) -> None:
        items = [_node_manifest(name, index) for index, name in enumerate(NODE_NAMES)]
        items += kwok_delete_guard()
        if self.real_node.get("enabled"):
            items.append(self.node.rbac_manifest())
        manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        result = self.kubectl("apply", "-f", "-", input=manifest, check=False)
        if result.returncode != 0:
            raise ClusterError(f"creating KWOK nodes failed: {result.stderr.strip()}")

    def _nodes_ready(self, expected: int) -> bool:
        result = self.kubectl("get", "nodes", "-o", "json", check=False)
        if result.returncode != 0:
            return False
        ready = 0
        for node in json.loads(result.stdout).get("items", []):
            conditions = node.get("status", {}).get("conditions", [])
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                ready += 1
        return ready >= expected

    # ----- health ----------------------------------------------------------------------

    def _probe_url(self, name: str) -> str:
        ports = self._read_state()["ports"]
        return {
            "etcd": f"http://127.0.0.1:{ports['etcd']}/health",
            "kube-apiserver": f"https://127.0.0.1:{ports['apiserver']}/readyz",
            "kube-controller-manager": f"https://127.0.0.1:{ports['controller_manager']}/healthz",
            "kube-scheduler": f"https://127.0.0.1:{ports['scheduler']}/healthz",
            "kwok": f"http://127.0.0.1:{ports['kwok']}/healthz",
            "kubelet": f"http://127.0.0.1:{ports.get('kubelet_healthz')}/healthz",
        }[name]

    def _probe(self, name: str) -> tuple[bool, str]:
        if name == "containerd":
            return self.node.containerd_healthy()
        if name == "local-path-provisioner":
            # It serves no health endpoint: healthy once its StorageClass's
            # controller has started (its log says so), for as long as it runs.
            log = (self.logs / f"{name}.log").read_text(errors="replace")
            started = "Provisioner started" in log or "Started provisioner controller" in log
            return started, "controller started" if started else "starting"
        url = self._probe_url(name)
        context = None
        headers = {}
        if name == "kube-apiserver":
            context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
            headers["Authorization"] = f"Bearer {self.token()}"
        elif url.startswith("https"):
            # Self-signed serving certs of the controller manager and scheduler, on
            # loopback: only liveness is read from them.
            context = ssl._create_unverified_context()
        try:
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=3, context=context) as response:
                body = response.read(512).decode(errors="replace")
                return response.status == 200, body.strip()[:80]
        except (urllib.error.URLError, OSError, ValueError) as error:
            return False, str(error)[:120]

    def _component_running(self, name: str) -> bool:
        """True while ``name`` runs; raises with its log's tail once it has exited."""
        pid = self._read_state().get("pids", {}).get(name)
        if not pid or not _pid_alive(pid):
            raise ClusterError(
                f"{name} exited during start-up; see {self.logs / (name + '.log')}:\n"
                + _tail(self.logs / f"{name}.log"))
        return True

    def _component_healthy(self, name: str) -> bool:
        return self._component_running(name) and self._probe(name)[0]

    @staticmethod
    def _wait(check: Callable[[], bool], deadline: float, what: str) -> None:
        while True:
            if check():
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out waiting for {what}")
            time.sleep(0.25)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


KWOK_USER = "kwok-controller"
KWOK_DELETE_GUARD = "localcluster-kwok-deletes-terminating-pods-only"


def kwok_delete_guard() -> list[dict]:
    """An admission policy that lets KWOK delete only pods already being deleted.

    KWOK (v0.7.0, v0.8.0 alike: ``PodController.deleteResource``) removes a terminating
    pod by *name*, with grace 0 and no UID precondition, and may do so more than once. A
    late delete lands on whatever pod holds the name by then: the replacement a
    controller made for the pod, which is not terminating. A kubelet preconditions its
    delete on the pod's UID (kubernetes#25224); this policy gives KWOK's deletes the same
    effect: refused unless the pod they reach has a ``deletionTimestamp``."""
    return [
        {"apiVersion": "admissionregistration.k8s.io/v1",
         "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": KWOK_DELETE_GUARD},
         "spec": {
             "failurePolicy": "Fail",
             "matchConstraints": {"resourceRules": [{
                 "apiGroups": [""], "apiVersions": ["v1"], "operations": ["DELETE"],
                 "resources": ["pods"]}]},
             "matchConditions": [{"name": "kwok",
                                  "expression": f"request.userInfo.username == '{KWOK_USER}'"}],
             "validations": [{
                 "expression": "has(oldObject.metadata.deletionTimestamp)",
                 "message": "KWOK deletes only terminating pods: this pod is a newer "
                            "one of the same name"}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1",
         "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": KWOK_DELETE_GUARD},
         "spec": {"policyName": KWOK_DELETE_GUARD, "validationActions": ["Deny"]}},
    ]


def _node_manifest(name: str, index: int) -> dict:
    capacity = {"cpu": "64", "memory": "512Gi", "pods": "12000"}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"type": "kwok", "kubernetes.io/hostname": name,
                       "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
        },
        # Simulated pod addresses; nothing listens there and nothing dials them.
        "spec": {"podCIDR": f"10.{244 + index}.0.0/16"},
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def format_health(report: Iterable[ComponentHealth]) -> str:
    rows = [f"{'component':<26}{'pid':>8}  {'running':<8}{'healthy':<8}detail"]
    for c in report:
        rows.append(f"{c.name:<26}{c.pid or '-':>8}  {'yes' if c.running else 'no':<8}"
                    f"{'yes' if c.healthy else 'no':<8}{c.detail}")
    return "\n".join(rows)
