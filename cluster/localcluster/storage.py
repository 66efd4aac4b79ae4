"""The real node's storage: rancher's local-path-provisioner (built from the pinned
module in ``cluster/storage/``), run as one more local process, and the StorageClass
``local-path`` whose volumes are real directories on the real node.

The provisioner makes a volume by running a helper pod on the node that mkdirs its
directory (and one that removes it, under ``reclaimPolicy: Delete``). That helper runs
the shard-server image, which is already on the node (``rancher/library-busybox`` is
not, and nothing can be pulled), as root for the ``mkdir`` only. Volumes exist only on
the real node: the class's ``allowedTopologies`` name it, so a claim never waits for a
KWOK node that has no disk.
"""

from __future__ import annotations

import json
from pathlib import Path

NAMESPACE = "local-path-storage"
SERVICE_ACCOUNT = "local-path-provisioner-service-account"
CONFIG_MAP = "local-path-config"
STORAGE_CLASS = "local-path"
PROVISIONER = "rancher.io/local-path"
USER = "local-path-provisioner"

SETUP = '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n'
TEARDOWN = '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n'


def volumes_dir(cluster_dir: Path) -> Path:
    """Where the volumes' directories live on this machine."""
    return cluster_dir / "node" / "volumes"


def helper_pod(helper_image: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "helper-pod"},
        "spec": {
            "containers": [{
                "name": "helper-pod", "image": helper_image, "imagePullPolicy": "Never",
                # root for mkdir/rm in the node's volumes directory (owned by root)
                "securityContext": {"runAsUser": 0, "runAsGroup": 0},
            }],
        },
    }


def manifest(node_name: str, cluster_dir: Path, helper_image: str) -> dict:
    """The objects the provisioner needs, as one List for ``kubectl apply``."""
    config = {"nodePathMap": [{"node": node_name, "paths": [str(volumes_dir(cluster_dir))]}]}
    items = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": CONFIG_MAP, "namespace": NAMESPACE},
         "data": {"config.json": json.dumps(config), "setup": SETUP, "teardown": TEARDOWN,
                  "helperPod.yaml": json.dumps(helper_pod(helper_image))}},
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
         "metadata": {"name": STORAGE_CLASS, "annotations": {
             "storageclass.kubernetes.io/is-default-class": "true"}},
         "provisioner": PROVISIONER, "reclaimPolicy": "Delete",
         "volumeBindingMode": "WaitForFirstConsumer",
         # local-path cannot grow a volume: the operator reports that, never pretends.
         "allowVolumeExpansion": False,
         "allowedTopologies": [{"matchLabelExpressions": [
             {"key": "kubernetes.io/hostname", "values": [node_name]}]}]},
    ]
    return {"apiVersion": "v1", "kind": "List", "items": items}


def argv(binary: Path, kubeconfig: Path) -> list[str]:
    return [str(binary), "--debug", "start", f"--kubeconfig={kubeconfig}",
            f"--namespace={NAMESPACE}", f"--configmap-name={CONFIG_MAP}",
            f"--service-account-name={SERVICE_ACCOUNT}", f"--provisioner-name={PROVISIONER}",
            # the helper image comes from helperPod.yaml; this flag is only its fallback
            "--helper-image=unused.invalid/helper:0"]
