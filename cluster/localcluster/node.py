"""The real node: containerd and a kubelet beside the KWOK nodes.

Its one job is what KWOK cannot do: run the project's images. It is tainted
(``shards.anoma.net/real-node=true:NoSchedule``), so only pods that tolerate it land
there; benchmarks and most tests stay on KWOK.

Everything it makes lives under ``<cluster dir>/node`` or is named after this cluster
and removed by :meth:`RealNode.teardown`:

- containerd with its own root, state, socket, runc root and registry config; every
  registry host points at a closed loopback port, so a missing image fails at once
  and no name lookup leaves the machine;
- the kubelet, listening on 127.0.0.1 only, with its cgroups under
  ``/<CGROUP_ROOT>`` in every cgroup v1 controller and no iptables chains;
- a bridge ``BRIDGE`` with no uplink holding ``POD_GATEWAY``: pods get addresses in
  ``POD_SUBNET`` with no default route, no masquerade, ``ip_forward`` untouched, and a
  blackhole route for ``POD_RANGE`` on the host. Only the kubelet's probes connect to
  those addresses; tests and the demo use port-forward and exec over 127.0.0.1.

The node's name must resolve to 127.0.0.1 on this machine (the apiserver dials a
node's Hostname address): it is the host name when ``/etc/hosts`` maps it to
127.0.0.1, otherwise ``localhost``. Nothing is added to any system file.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .pki import PKI
from .procs import processes_naming
from .tools import REPO_ROOT

BRIDGE = "shardop0"
POD_RANGE = "10.246.0.0/16"
POD_SUBNET = "10.246.0.0/24"
POD_GATEWAY = "10.246.0.1"
CGROUP_ROOT = "shard-operator-node"
CGROUP_V1 = Path("/sys/fs/cgroup")
TAINT_KEY = "shards.anoma.net/real-node"
NODE_LABEL = "shards.anoma.net/real-node"
CNI_BIN = Path("/usr/lib/cni")
CNI_NETWORK = "shard-operator-node"
# libcni keeps a result cache here whatever the runtime's configuration says.
CNI_CACHE = Path("/var/lib/cni")
# Paths that containerd's shims (sockets), libcni (cache) and the kubelet (device
# plugins, volume plugins) make whatever their configuration says: removed at teardown
# when they did not exist before the node first started.
HOST_PATHS = (Path("/run/containerd"), CNI_CACHE, Path("/var/lib/kubelet"),
              Path("/usr/libexec/kubernetes"))
IMAGES_MANIFEST = REPO_ROOT / ".images" / "images.json"
PAUSE_IMAGE_NAME = "shard-operator-pause"
# Registries whose names a pod spec might carry; each points at a closed loopback port.
REGISTRY_HOSTS = ("docker.io", "registry.k8s.io", "ghcr.io", "quay.io", "gcr.io")
CLOSED_PORT = "http://127.0.0.1:9"
REQUIRED_COMMANDS = ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "ip", "mount")
CGROUP_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids")


def cgroup_hierarchies() -> list[Path]:
    """Every mounted cgroup v1 hierarchy (the kubelet wants its root in each)."""
    return sorted(d for d in CGROUP_V1.iterdir() if (d / "cgroup.procs").is_file())


class NodeError(RuntimeError):
    """The real node could not be started or cleaned up."""


def node_name(hosts: Path = Path("/etc/hosts")) -> str:
    """The host name if ``/etc/hosts`` maps it to 127.0.0.1, else ``localhost``."""
    hostname = socket.gethostname().lower()
    try:
        for line in hosts.read_text().splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) >= 2 and fields[0] == "127.0.0.1" and hostname in fields[1:]:
                return hostname
    except OSError:
        pass
    return "localhost"


def missing_requirements() -> list[str]:
    """What this machine lacks to run the real node (empty when it can)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (containerd and the kubelet need it)")
    try:
        if "overlay" not in Path("/proc/filesystems").read_text():
            missing.append("the overlay filesystem")
    except OSError:
        missing.append("/proc/filesystems")
    for command in REQUIRED_COMMANDS:
        if shutil.which(command) is None:
            missing.append(f"the command {command!r}")
    for plugin in ("bridge", "host-local", "loopback"):
        if not (CNI_BIN / plugin).is_file():
            missing.append(f"the CNI plugin {CNI_BIN / plugin}")
    for controller in CGROUP_CONTROLLERS:
        if not (CGROUP_V1 / controller / "cgroup.procs").is_file():
            missing.append(f"the cgroup v1 controller {controller}")
    if not IMAGES_MANIFEST.is_file():
        missing.append(f"the images ({IMAGES_MANIFEST} is missing: run 'make images')")
    return missing


def _run(*argv: str, check: bool = True, timeout: float = 120.0
         ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise NodeError(f"{' '.join(argv)} failed ({result.returncode}): "
                        f"{(result.stderr or result.stdout).strip()}")
    return result


@dataclass(frozen=True)
class NodePorts:
    kubelet: int
    kubelet_healthz: int


class RealNode:
    """Configuration, start-up steps and clean-up of the real node of one cluster."""

    def __init__(self, cluster_dir: Path, pki: PKI) -> None:
        self.root = cluster_dir / "node"
        self.pki = pki
        self.name = node_name()

    # ----- paths -----------------------------------------------------------------------

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd" / "config.toml"

    @property
    def runc_root(self) -> Path:
        return self.root / "containerd" / "runc"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.root / "kubelet.yaml"

    @property
    def kubelet_kubeconfig(self) -> Path:
        return self.root / "kubelet.kubeconfig"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    # ----- configuration ---------------------------------------------------------------

    def images(self) -> list[dict]:
        """The images ``make images`` built (``.images/images.json``)."""
        return json.loads(IMAGES_MANIFEST.read_text())

    def image_ref(self, name: str) -> str:
        """The reference of the built image ``name`` (e.g. ``shard-server``)."""
        for image in self.images():
            if image["name"] == name:
                return image["ref"]
        raise NodeError(f"{IMAGES_MANIFEST} has no {name} image")

    def pause_image(self) -> str:
        return self.image_ref(PAUSE_IMAGE_NAME)

    def prepare(self, server: str, ports: NodePorts) -> None:
        """Write certificates, kubeconfig, containerd, CNI and kubelet configuration."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "host.json").write_text(json.dumps(
            {"made": [str(path) for path in HOST_PATHS if not path.exists()]}))
        for directory in (self.root / "containerd", self.kubelet_root, self.cni_conf_dir,
                          self.root / "pod-logs", self.root / "volume-plugins"):
            directory.mkdir(parents=True, exist_ok=True)
        client_cert, client_key = self.pki.issue(
            "kubelet-client", f"/O=system:nodes/CN=system:node:{self.name}",
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=clientAuth\n")
        serving_cert, serving_key = self.pki.issue(
            "kubelet-serving", f"/O=system:nodes/CN=system:node:{self.name}",
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            f"subjectAltName=DNS:{self.name},DNS:localhost,IP:127.0.0.1\n")
        self.pki.issue(
            "apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client",
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=clientAuth\n")
        self.kubelet_kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "node",
            "clusters": [{"name": "local", "cluster": {
                "server": server, "certificate-authority": str(self.pki.ca_cert)}}],
            "users": [{"name": "node", "user": {
                "client-certificate": str(client_cert), "client-key": str(client_key)}}],
            "contexts": [{"name": "node", "context": {"cluster": "local", "user": "node"}}],
        }, indent=2))
        self.kubelet_kubeconfig.chmod(0o600)
        self.containerd_config.write_text(self._containerd_toml())
        for host in REGISTRY_HOSTS:
            hosts_dir = self.root / "containerd" / "certs.d" / host
            hosts_dir.mkdir(parents=True, exist_ok=True)
            (hosts_dir / "hosts.toml").write_text(
                f'# No registry is reachable from here: fail fast, look nothing up.\n'
                f'server = "{CLOSED_PORT}"\n')
        (self.cni_conf_dir / "10-shard-operator.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0", "name": CNI_NETWORK,
            "plugins": [{
                "type": "bridge", "bridge": BRIDGE, "isGateway": False, "ipMasq": False,
                "hairpinMode": False,
                "ipam": {"type": "host-local", "routes": [],
                         "dataDir": str(self.root / "cni" / "ipam"),
                         "ranges": [[{"subnet": POD_SUBNET, "gateway": POD_GATEWAY}]]},
            }],
        }, indent=2))
        self.kubelet_config.write_text(json.dumps(self._kubelet_configuration(
            ports, serving_cert, serving_key), indent=2))

    def _containerd_toml(self) -> str:
        d = self.root / "containerd"
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        return f"""# containerd of the local cluster's real node (written by localcluster)
version = 2
root = "{d / 'root'}"
state = "{d / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{self.containerd_socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d / 'opt'}"

[{cri}]
  sandbox_image = "{self.pause_image()}"
  # The VM withholds CAP_SYS_RESOURCE: never ask runc to lower oom_score_adj.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  enable_selinux = false

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  Root = "{self.runc_root}"
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{self.cni_conf_dir}"
  max_conf_num = 1

[{cri}.registry]
  config_path = "{d / 'certs.d'}"
"""

    def _kubelet_configuration(self, ports: NodePorts, cert: Path, key: Path) -> dict:
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "address": "127.0.0.1", "port": ports.kubelet, "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1", "healthzPort": ports.kubelet_healthz,
            "tlsCertFile": str(cert), "tlsPrivateKeyFile": str(key),
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                               "x509": {"clientCAFile": str(self.pki.ca_cert)}},
            # Only the apiserver holds a client certificate of this CA for the kubelet.
            "authorization": {"mode": "AlwaysAllow"},
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "cgroupDriver": "cgroupfs", "cgroupRoot": f"/{CGROUP_ROOT}",
            "failCgroupV1": False, "failSwapOn": False,
            "makeIPTablesUtilChains": False,
            # No cluster DNS, and pods have no route to a name server anyway.
            "resolvConf": "",
            "podLogsDir": str(self.root / "pod-logs"),
            "volumePluginDir": str(self.root / "volume-plugins"),
            "registerWithTaints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
            "maxPods": 60,
            "serializeImagePulls": False,
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                             "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
            "enforceNodeAllocatable": ["pods"],
            "nodeStatusReportFrequency": "10s",
            "syncFrequency": "10s",
            "shutdownGracePeriod": "0s",
        }

    def kubelet_argv(self, kubelet: Path) -> list[str]:
        return [str(kubelet), f"--config={self.kubelet_config}",
                f"--kubeconfig={self.kubelet_kubeconfig}",
                f"--root-dir={self.kubelet_root}", f"--cert-dir={self.kubelet_root / 'pki'}",
                f"--hostname-override={self.name}",
                f"--node-labels={NODE_LABEL}=true,type=real", "--v=1"]

    def containerd_argv(self) -> list[str]:
        return ["containerd", f"--config={self.containerd_config}"]

    def rbac_manifest(self) -> dict:
        """Bind the node's identity to ``system:node`` (the apiserver runs RBAC only)."""
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "shard-operator-local-node"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "system:node"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": f"system:node:{self.name}"}],
        }

    # ----- host set-up -----------------------------------------------------------------

    def setup_host(self) -> None:
        """The bridge and its routes, and the kubelet's cgroup root."""
        if _run("ip", "link", "show", BRIDGE, check=False).returncode != 0:
            _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "replace", f"{POD_GATEWAY}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        _run("ip", "route", "replace", "blackhole", POD_RANGE)
        for hierarchy in cgroup_hierarchies():
            path = hierarchy / CGROUP_ROOT
            path.mkdir(exist_ok=True)
            if hierarchy.name == "cpuset":
                for name in ("cpuset.cpus", "cpuset.mems"):
                    (path / name).write_text((CGROUP_V1 / "cpuset" / name).read_text())

    def import_images(self) -> list[str]:
        """Import every archive of ``.images/`` into containerd's k8s.io namespace."""
        imported = []
        for image in self.images():
            archive = REPO_ROOT / image["archive"]
            _run("ctr", f"--address={self.containerd_socket}", "-n", "k8s.io", "images",
                 "import", str(archive), timeout=300)
            imported.append(image["ref"])
        return imported

    def containerd_healthy(self) -> tuple[bool, str]:
        if not self.containerd_socket.exists():
            return False, "no socket"
        result = _run("ctr", f"--address={self.containerd_socket}", "version",
                      check=False, timeout=5)
        if result.returncode != 0:
            return False, result.stderr.strip()[:80]
        return True, "ok"

    # ----- clean-up --------------------------------------------------------------------

    def teardown(self) -> list[str]:
        """Remove every container, mount, namespace, cgroup, link and route this node
        made. Call it after containerd and the kubelet have stopped. Returns what could
        not be removed (empty when clean)."""
        if self.runc_root.is_dir():
            for runc_root in [p for p in self.runc_root.iterdir() if p.is_dir()]:
                listed = _run("runc", f"--root={runc_root}", "list", "-q", check=False)
                for container in listed.stdout.split():
                    _run("runc", f"--root={runc_root}", "kill", container, "KILL", check=False)
                    _run("runc", f"--root={runc_root}", "delete", "--force", container,
                         check=False)
        self._kill_shims()
        self._unmount_all()
        _run("ip", "link", "del", BRIDGE, check=False)
        _run("ip", "route", "del", "blackhole", POD_RANGE, check=False)
        self._remove_cgroups()
        self._remove_cni_cache()
        self._remove_host_paths()
        return self.leftovers()

    def _made_host_paths(self) -> list[Path]:
        try:
            return [Path(p) for p in json.loads((self.root / "host.json").read_text())["made"]]
        except (OSError, KeyError, json.JSONDecodeError):
            return []

    def _remove_host_paths(self) -> None:
        for path in self._made_host_paths():
            shutil.rmtree(path, ignore_errors=True)

    def _kill_shims(self) -> None:
        for pid in processes_naming(str(self.containerd_socket)):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        time.sleep(0.2)

    def mounts(self) -> list[str]:
        """Mount points under this node's directory, deepest first."""
        prefix = str(self.root) + "/"
        found = []
        with open("/proc/self/mountinfo") as mountinfo:
            for line in mountinfo:
                point = line.split()[4].encode().decode("unicode_escape")
                if point.startswith(prefix):
                    found.append(point)
        return sorted(set(found), key=lambda p: p.count("/"), reverse=True)

    def _unmount_all(self) -> None:
        for _ in range(3):
            points = self.mounts()
            if not points:
                return
            for point in points:
                _run("umount", "-l", point, check=False)

    def _cgroup_dirs(self) -> list[Path]:
        found: list[Path] = []
        for hierarchy in cgroup_hierarchies():
            top = hierarchy / CGROUP_ROOT
            if top.is_dir():
                found.extend(Path(p) for p, _, _ in os.walk(top))
        return sorted(found, key=lambda p: str(p).count("/"), reverse=True)

    def _remove_cgroups(self) -> None:
        for _ in range(20):
            remaining = self._cgroup_dirs()
            if not remaining:
                return
            for path in remaining:
                try:
                    for pid in (path / "cgroup.procs").read_text().split():
                        try:
                            os.kill(int(pid), 9)
                        except ProcessLookupError:
                            pass
                    path.rmdir()
                except OSError:
                    pass
            time.sleep(0.1)

    def _remove_cni_cache(self) -> None:
        results = CNI_CACHE / "results"
        if results.is_dir():
            for entry in results.glob(f"{CNI_NETWORK}-*"):
                entry.unlink(missing_ok=True)

    def leftovers(self) -> list[str]:
        """Anything of this node still on the machine."""
        found = [f"mount {point}" for point in self.mounts()]
        found.extend(f"path {path}" for path in self._made_host_paths() if path.exists())
        if _run("ip", "link", "show", BRIDGE, check=False).returncode == 0:
            found.append(f"link {BRIDGE}")
        routes = _run("ip", "route", "show", "type", "blackhole", check=False).stdout
        if POD_RANGE in routes:
            found.append(f"route blackhole {POD_RANGE}")
        found.extend(f"cgroup {path}" for path in self._cgroup_dirs())
        netns = _run("ip", "netns", "list", check=False).stdout
        found.extend(f"netns {line.split()[0]}" for line in netns.splitlines()
                     if line.startswith("cni-"))
        results = CNI_CACHE / "results"
        if results.is_dir():
            found.extend(f"file {entry}" for entry in results.glob(f"{CNI_NETWORK}-*"))
        iptables = _run("iptables-save", check=False).stdout if shutil.which(
            "iptables-save") else ""
        found.extend(f"iptables {line}" for line in iptables.splitlines()
                     if line.startswith(":KUBE-"))
        return found
