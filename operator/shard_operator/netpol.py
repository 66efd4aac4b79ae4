"""The NetworkPolicy of a ShardSet's shard pods: ingress on the shard port only, and
only from the ShardSet's clients. Pure.

``shard-clients-<nodeId>`` selects exactly the ShardSet's shard pods (the labels its
PodDisruptionBudget selects too) and admits TCP on the shard port from

* pods of the same namespace labelled ``shards.anoma.net/client: <nodeId>``, and
* each peer of ``spec.clientSelector``: a ``podSelector`` (pods of the ShardSet's
  namespace), a ``namespaceSelector`` (every pod of those namespaces) or both (those
  pods of those namespaces), exactly as in a NetworkPolicy's ``from``.

Nothing else reaches the shards; egress is not restricted. The CRD refuses an entry
with no selector and any ``ipBlock``. Enforcement is the CNI's: without one that
implements NetworkPolicy the object changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .budget import shard_pod_selector
from .constants import (
    LABEL_CLIENT,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_NODE_ID,
    MANAGER,
    NETPOL_PREFIX,
    SHARD_PORT,
)
from .render import owner_reference

API = "networking.k8s.io/v1"
KIND = "NetworkPolicy"
SELECTORS = ("podSelector", "namespaceSelector")
# The labels the operator sets and restores on the policy.
OWNED_LABELS = (LABEL_MANAGED_BY, LABEL_NAME, LABEL_NODE_ID)


def policy_name(node_id: str) -> str:
    return NETPOL_PREFIX + node_id


def client_labels(node_id: str) -> dict[str, str]:
    """The label a client pod carries to reach the shards of ``node_id``."""
    return {LABEL_CLIENT: node_id}


def label_selector(selector: Mapping[str, Any]) -> dict[str, Any]:
    """A LabelSelector as the API server stores it: empty lists and maps left out
    (``{}`` selects everything), so a stored policy compares equal to a rendered one."""
    out: dict[str, Any] = {}
    if selector.get("matchLabels"):
        out["matchLabels"] = {str(k): str(v) for k, v in selector["matchLabels"].items()}
    expressions = []
    for expression in selector.get("matchExpressions") or ():
        item = {"key": expression["key"], "operator": expression["operator"]}
        if expression.get("values"):
            item["values"] = list(expression["values"])
        expressions.append(item)
    if expressions:
        out["matchExpressions"] = expressions
    return out


def peer(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One ``spec.clientSelector`` entry as a NetworkPolicyPeer (its selectors only)."""
    return {k: label_selector(entry[k]) for k in SELECTORS if entry.get(k) is not None}


def peers(node_id: str, client_selector: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Who may connect: the labelled clients first, then the ShardSet's own peers (an
    entry with no selector is skipped: the CRD refuses it, and an empty peer would admit
    every source)."""
    found = [{"podSelector": {"matchLabels": client_labels(node_id)}}]
    for entry in client_selector:
        rendered = peer(entry)
        if rendered and rendered not in found:
            found.append(rendered)
    return found


def network_policy(shardset: dict[str, Any], node_id: str,
                   client_selector: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The desired policy of the ShardSet ``shardset`` (its metadata: name, namespace,
    uid), owned by it."""
    meta = shardset["metadata"]
    return {
        "apiVersion": API, "kind": KIND,
        "metadata": {
            "name": policy_name(node_id), "namespace": meta["namespace"],
            "labels": {LABEL_MANAGED_BY: MANAGER, LABEL_NAME: "shard-clients",
                       LABEL_NODE_ID: node_id},
            "ownerReferences": [owner_reference(shardset, "ShardSet")],
        },
        "spec": {
            "podSelector": {"matchLabels": shard_pod_selector(node_id)},
            "policyTypes": ["Ingress"],
            "ingress": [{"ports": [{"protocol": "TCP", "port": SHARD_PORT}],
                         "from": peers(node_id, client_selector)}],
        },
    }


def merge_diff(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns ``current`` into ``desired``: keys
    ``desired`` lacks are set to null (removed), maps are diffed key by key and any
    other value (lists included) is sent whole where it differs."""
    patch: dict[str, Any] = {k: None for k in current if k not in desired}
    for key, want in desired.items():
        have = current.get(key)
        if isinstance(want, dict) and isinstance(have, dict):
            inner = merge_diff(have, want)
            if inner:
                patch[key] = inner
        elif key not in current or have != want:
            patch[key] = want
    return patch


def policy_patch(current: Mapping[str, Any], desired: Mapping[str, Any], owner_uid: str
                 ) -> dict[str, Any]:
    """What brings ``current`` back to ``desired`` (empty: nothing to do), as a JSON merge
    patch (what ``kube.py`` sends for this API group): the owned labels, the owner
    reference (the list as a whole: the ShardSet is this object's only owner), and the
    spec exactly, every added key removed (a label added to the pod selector would
    narrow it and leave shard pods open)."""
    patch: dict[str, Any] = {}
    meta, want = current.get("metadata") or {}, desired["metadata"]
    labels = meta.get("labels") or {}
    drifted = {k: want["labels"][k] for k in OWNED_LABELS if labels.get(k) != want["labels"][k]}
    if drifted:
        patch.setdefault("metadata", {})["labels"] = drifted
    if not any(ref.get("uid") == owner_uid for ref in meta.get("ownerReferences") or ()):
        patch.setdefault("metadata", {})["ownerReferences"] = want["ownerReferences"]
    spec = merge_diff(current.get("spec") or {}, desired["spec"])
    if spec:
        patch["spec"] = spec
    return patch
