"""The real node's configuration obeys the machine's network rule (pure rendering)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from localcluster import node
from localcluster.node import NodePorts, RealNode
from localcluster.pki import PKI


def test_node_name_is_the_host_name_only_when_hosts_maps_it_to_loopback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "Box")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n# 127.0.0.1 box\n10.0.0.5 box\n")
    assert node.node_name(hosts) == "localhost"
    hosts.write_text("127.0.0.1 localhost\n127.0.0.1 other box # comment\n")
    assert node.node_name(hosts) == "box"
    assert node.node_name(tmp_path / "missing") == "localhost"


@pytest.fixture
def prepared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RealNode:
    pki = PKI(tmp_path / "pki")
    pki.create()
    real = RealNode(tmp_path, pki)
    monkeypatch.setattr(RealNode, "pause_image",
                        lambda self: "docker.io/library/shard-operator-pause:0.1.0")
    real.prepare("https://127.0.0.1:6443", NodePorts(kubelet=10250, kubelet_healthz=10248))
    return real


def test_kubelet_listens_on_loopback_without_dns_or_iptables(prepared: RealNode) -> None:
    config = json.loads(prepared.kubelet_config.read_text())
    assert config["address"] == "127.0.0.1"
    assert config["healthzBindAddress"] == "127.0.0.1"
    assert config["readOnlyPort"] == 0
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["resolvConf"] == ""
    assert config["makeIPTablesUtilChains"] is False
    assert config["failCgroupV1"] is False
    assert config["registerWithTaints"] == [
        {"key": node.TAINT_KEY, "value": "true", "effect": "NoSchedule"}]
    assert all(str(prepared.root) in config[k] for k in ("podLogsDir", "volumePluginDir"))


def test_pod_network_has_no_uplink_gateway_masquerade_or_routes(prepared: RealNode) -> None:
    (conflist,) = prepared.cni_conf_dir.glob("*.conflist")
    (bridge,) = json.loads(conflist.read_text())["plugins"]
    assert bridge["type"] == "bridge" and bridge["bridge"] == node.BRIDGE
    assert bridge["isGateway"] is False and bridge["ipMasq"] is False
    assert bridge["ipam"]["routes"] == []
    assert bridge["ipam"]["ranges"] == [[{"subnet": node.POD_SUBNET,
                                          "gateway": node.POD_GATEWAY}]]


def test_containerd_never_reaches_a_registry_and_spares_oom_score_adj(
        prepared: RealNode) -> None:
    toml = prepared.containerd_config.read_text()
    assert "restrict_oom_score_adj = true" in toml
    assert 'stream_server_address = "127.0.0.1"' in toml
    assert f'address = "{prepared.containerd_socket}"' in toml
    for host in node.REGISTRY_HOSTS:
        hosts_toml = prepared.root / "containerd" / "certs.d" / host / "hosts.toml"
        assert f'server = "{node.CLOSED_PORT}"' in hosts_toml.read_text()
    assert node.CLOSED_PORT.startswith("http://127.0.0.1:")


def test_node_identity_is_bound_to_the_system_node_role(prepared: RealNode) -> None:
    binding = prepared.rbac_manifest()
    assert binding["roleRef"]["name"] == "system:node"
    assert binding["subjects"][0]["name"] == f"system:node:{prepared.name}"
    kubeconfig = json.loads(prepared.kubelet_kubeconfig.read_text())
    assert kubeconfig["clusters"][0]["cluster"]["server"].startswith("https://127.0.0.1:")
