"""The key map ConfigMap's format, ``shards.anoma.net/key-map/v1``.

``kubectl get configmap shard-key-map-<nodeId> -o yaml`` shows::

    data:
      format: shards.anoma.net/key-map/v1
      nodeId: node-1
      serviceDomain: default.svc
      port: "8080"
      node-1-3u6p0yq6ggpmtv4j: '["a"]'          # shard (= Service) name: key
      node-1-wxcz6tk2nqi8f7wd: '{"base64":["AAE="]}'

Every other entry is one registered shard: its name (which is also its Service's name)
and its key as JSON (a list of UTF-8 segments, or ``{"base64": [...]}`` for keys that
are not UTF-8). The shard's address is ``<name>.<serviceDomain>:<port>``. Keeping the
address out of each entry keeps a 10,000-key map well under the 1 MiB ConfigMap limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .constants import KEY_MAP_FORMAT, SHARD_PORT
from .keys import Key, key_from_json, key_to_json, service_domain, shard_address

HEADER_FIELDS = ("format", "nodeId", "serviceDomain", "port")


class KeyMapFormatError(ValueError):
    """The ConfigMap is not a key map this version understands."""


@dataclass(frozen=True)
class KeyMap:
    node_id: str
    service_domain: str
    port: int
    shards: dict[Key, str] = field(default_factory=dict)  # key -> shard/service name

    def address(self, key: Key) -> str:
        """``<service>.<namespace>.svc:<port>``; KeyError if the key is not registered."""
        return shard_address(self.shards[key], domain=self.service_domain, port=self.port)


def render(node_id: str, namespace: str, shards: Mapping[str, Key],
           port: int = SHARD_PORT) -> dict[str, str]:
    """The ConfigMap ``data`` for these registered shards (name -> key)."""
    data = {
        "format": KEY_MAP_FORMAT,
        "nodeId": node_id,
        "serviceDomain": service_domain(namespace),
        "port": str(port),
    }
    for name in sorted(shards):
        data[name] = key_to_json(shards[name])
    return data


def entry_size(name: str, key: Key) -> int:
    """Bytes one entry adds to the ConfigMap's data."""
    return len(name.encode()) + len(key_to_json(key).encode())


def data_size(data: Mapping[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in data.items())


def parse(data: Mapping[str, str] | None) -> KeyMap:
    """Read a key map's ``data``; raises KeyMapFormatError on anything else."""
    if not data:
        raise KeyMapFormatError("the key map has no data")
    if data.get("format") != KEY_MAP_FORMAT:
        raise KeyMapFormatError(
            f"unsupported key map format {data.get('format')!r}; expected {KEY_MAP_FORMAT!r}")
    try:
        port = int(data["port"])
        node_id, domain = data["nodeId"], data["serviceDomain"]
    except (KeyError, ValueError) as error:
        raise KeyMapFormatError(f"key map header is incomplete: {error}") from None
    shards: dict[Key, str] = {}
    for name, value in data.items():
        if name in HEADER_FIELDS:
            continue
        try:
            shards[key_from_json(value)] = name
        except ValueError as error:
            raise KeyMapFormatError(f"entry {name!r}: {error}") from None
    return KeyMap(node_id=node_id, service_domain=domain, port=port, shards=shards)
