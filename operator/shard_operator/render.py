"""Desired objects as plain data: the Shards of a ShardSet, and the Pod and Service of
a Shard. Pure functions; the controller compares their output with what it observed."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from .constants import (
    ANNOTATION_KEY,
    ANNOTATION_TEMPLATE_HASH,
    API_VERSION,
    DEFAULT_IMAGE,
    INITIAL_VALUE_MAX_BYTES,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_NODE_ID,
    LABEL_ORIGIN,
    LABEL_SHARD,
    MANAGER,
    ORIGIN_SCHEMA,
    SHARD_PORT,
)
from .keys import InvalidKey, Key, decode_segments, key_to_json, shard_name
from .missing import MISSING
from .spec import ShardSetSpec
from .volumes import with_claim

# The shard server image of the default pod template: `shard-operator run --shard-image`
# (SHARD_OPERATOR_SHARD_IMAGE) sets it; a ShardSet's spec.template overrides it.
shard_image = DEFAULT_IMAGE


def owner_reference(body: dict[str, Any], kind: str, api_version: str = API_VERSION
                    ) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": body["metadata"]["name"],
            "uid": body["metadata"]["uid"], "controller": True}


def owned_labels(node_id: str, shard: str) -> dict[str, str]:
    return {LABEL_MANAGED_BY: MANAGER, LABEL_NAME: "shard", LABEL_NODE_ID: node_id,
            LABEL_SHARD: shard}


def shard(*, name: str, namespace: str, node_id: str, segments: list[str], encoding: str,
          initial_value: Any = MISSING, origin: str, owner: dict[str, Any] | None
          ) -> dict[str, Any]:
    """A Shard object; ``owner`` is the ShardSet's body (ownerReference), if any."""
    spec: dict[str, Any] = {"nodeId": node_id, "key": list(segments), "keyEncoding": encoding}
    if initial_value is not MISSING:
        spec["initialValue"] = initial_value
    metadata: dict[str, Any] = {
        "name": name, "namespace": namespace,
        "labels": {LABEL_MANAGED_BY: MANAGER, LABEL_NODE_ID: node_id, LABEL_ORIGIN: origin},
    }
    if owner is not None:
        metadata["ownerReferences"] = [owner_reference(owner, "ShardSet")]
    return {"apiVersion": API_VERSION, "kind": "Shard", "metadata": metadata, "spec": spec}


def default_pod_spec() -> dict[str, Any]:
    """The shipped shard server, restricted-PSS compliant, with an emptyDir data dir."""
    return {
        "securityContext": {
            "runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [{
            "name": "shard",
            "image": shard_image,
            "ports": [{"name": "shard", "containerPort": SHARD_PORT}],
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": SHARD_PORT},
                               "periodSeconds": 5},
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": SHARD_PORT},
                              "periodSeconds": 10},
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                          "limits": {"memory": "128Mi"}},
            "securityContext": {"allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        }],
        "volumes": [{"name": "data", "emptyDir": {}}],
    }


def shard_env(node_id: str, spec: dict[str, Any]) -> list[dict[str, str]]:
    env = [
        {"name": "SHARD_NODE_ID", "value": node_id},
        {"name": "SHARD_KEY", "value": json.dumps(spec["key"], separators=(",", ":"))},
        {"name": "SHARD_KEY_ENCODING", "value": spec.get("keyEncoding", "utf8")},
    ]
    if "initialValue" in spec:
        env.append({"name": "SHARD_INITIAL_VALUE",
                    "value": json.dumps(spec["initialValue"], separators=(",", ":"))})
    env.append({"name": "SHARD_DATA_DIR", "value": "/data"})
    return env


def pod(shard_body: dict[str, Any], key: Key, template: dict[str, Any] | None,
        claim: bool = False) -> dict[str, Any]:
    """The Pod of a Shard, from the ShardSet's ``spec.template`` (or the default).

    Top-level fields of ``template.spec`` replace the default's. The operator adds its
    labels, the key annotation, the SHARD_* environment of the first container, and
    ``restartPolicy: Always``; with ``claim``, the ``data`` volume is the Shard's own
    PersistentVolumeClaim instead of an emptyDir. The template hash annotation records
    what was rendered.
    """
    template = template or {}
    meta = shard_body["metadata"]
    name, spec = meta["name"], shard_body["spec"]
    node_id = spec["nodeId"]
    pod_spec = {**default_pod_spec(), **copy.deepcopy(template.get("spec") or {})}
    pod_spec["restartPolicy"] = "Always"
    containers = pod_spec.get("containers") or default_pod_spec()["containers"]
    first = dict(containers[0])
    ours = {e["name"] for e in shard_env(node_id, spec)}
    first["env"] = shard_env(node_id, spec) + [
        e for e in first.get("env", []) if e.get("name") not in ours]
    pod_spec["containers"] = [first, *containers[1:]]
    if claim:
        pod_spec = with_claim(pod_spec, name)
    template_meta = template.get("metadata") or {}
    labels = {**(template_meta.get("labels") or {}), **owned_labels(node_id, name)}
    annotations = {**(template_meta.get("annotations") or {}), ANNOTATION_KEY: key_to_json(key)}
    body: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": meta["namespace"], "labels": labels,
                     "annotations": annotations,
                     "ownerReferences": [owner_reference(shard_body, "Shard")]},
        "spec": pod_spec,
    }
    body["metadata"]["annotations"][ANNOTATION_TEMPLATE_HASH] = template_hash(body)
    return body


def template_hash(pod_body: dict[str, Any]) -> str:
    """Hash of what the operator renders into a Pod (spec, labels, annotations)."""
    meta = pod_body["metadata"]
    annotations = {k: v for k, v in meta.get("annotations", {}).items()
                   if k != ANNOTATION_TEMPLATE_HASH}
    material = json.dumps([pod_body["spec"], meta.get("labels"), annotations], sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def service(shard_body: dict[str, Any], key: Key) -> dict[str, Any]:
    """The Service addressing a Shard's Pod: ``<name>.<namespace>.svc:8080``."""
    meta = shard_body["metadata"]
    name, node_id = meta["name"], shard_body["spec"]["nodeId"]
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": meta["namespace"],
                     "labels": owned_labels(node_id, name),
                     "annotations": {ANNOTATION_KEY: key_to_json(key)},
                     "ownerReferences": [owner_reference(shard_body, "Shard")]},
        "spec": {"type": "ClusterIP", "selector": {LABEL_SHARD: name},
                 "ports": [{"name": "shard", "port": SHARD_PORT, "targetPort": SHARD_PORT,
                            "protocol": "TCP"}]},
    }


def key_map(name: str, namespace: str, data: dict[str, str], owner: dict[str, Any]
            ) -> dict[str, Any]:
    node_id = data["nodeId"]
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {LABEL_MANAGED_BY: MANAGER, LABEL_NAME: "shard-key-map",
                                LABEL_NODE_ID: node_id},
                     "ownerReferences": [owner_reference(owner, "ShardSet")]},
        "data": data,
    }


def value_size(value: Any) -> int:
    """Bytes of an initial value as compact JSON."""
    return len(json.dumps(value, separators=(",", ":")).encode())


def schema_shards(spec: ShardSetSpec, owner: dict[str, Any], namespace: str
                  ) -> tuple[dict[str, tuple[Key, dict[str, Any]]], list[str]]:
    """The Shards a ShardSet's schema asks for: name → (key, Shard body), and problems.
    ``owner`` is the ShardSet's body (its metadata: the owner reference).

    The API server already rejects malformed entries; what only shows here is the same
    key written twice in different encodings (e.g. ``["a"]`` and base64 ``["YQ=="]``) or
    an initial value over the limit. Each problem names its entry (``spec.schema[i]``);
    with any problem the controller applies none of the generation.
    """
    wanted: dict[str, tuple[Key, dict[str, Any]]] = {}
    first: dict[str, int] = {}
    problems: list[str] = []
    for index, entry in enumerate(spec.schema):
        try:
            key = decode_segments(list(entry.segments), entry.encoding)
        except InvalidKey as error:
            problems.append(f"spec.schema[{index}]: {error}")
            continue
        if entry.initial_value is not MISSING and (
                size := value_size(entry.initial_value)) > INITIAL_VALUE_MAX_BYTES:
            problems.append(f"spec.schema[{index}]: the initialValue of key {key_to_json(key)} "
                            f"is {size} bytes of JSON, over the {INITIAL_VALUE_MAX_BYTES}-byte "
                            "limit")
            continue
        name = shard_name(spec.node_id, key)
        if name in wanted:
            problems.append(f"spec.schema[{index}]: key {key_to_json(key)} is "
                            f"spec.schema[{first[name]}] again, in another encoding")
            continue
        first[name] = index
        body = shard(name=name, namespace=namespace, node_id=spec.node_id,
                     segments=list(entry.segments), encoding=entry.encoding,
                     initial_value=entry.initial_value, origin=ORIGIN_SCHEMA, owner=owner)
        wanted[name] = (key, body)
    return wanted, problems
