"""Names shared by the operator, its API and its clients."""

GROUP = "shards.anoma.net"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
SHARDSETS = "shardsets"
SHARDS = "shards"

MANAGER = "shard-operator"  # field manager and app.kubernetes.io/managed-by
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_NODE_ID = f"{GROUP}/node-id"
LABEL_SHARD = f"{GROUP}/shard"
LABEL_ORIGIN = f"{GROUP}/origin"  # "schema" or "started"
LABEL_CLIENT = f"{GROUP}/client"  # = node id: a pod the NetworkPolicy lets in
ANNOTATION_KEY = f"{GROUP}/key"
ANNOTATION_TEMPLATE_HASH = f"{GROUP}/template-hash"

ORIGIN_SCHEMA = "schema"
ORIGIN_STARTED = "started"

SHARD_PORT = 8080
KEY_MAP_PREFIX = "shard-key-map-"
BUDGET_PREFIX = "shard-budget-"  # + node id: the ShardSet's PodDisruptionBudget
NETPOL_PREFIX = "shard-clients-"  # + node id: the ShardSet's NetworkPolicy
KEY_MAP_FORMAT = "shards.anoma.net/key-map/v1"
# ConfigMaps are capped at 1 MiB of data; keep a margin for metadata.
KEY_MAP_MAX_BYTES = 1_000_000
# An initial value travels in its Shard and in its Pod's environment: bounded so that
# neither nears the API server's object limits (compact JSON, UTF-8 bytes).
INITIAL_VALUE_MAX_BYTES = 65_536

# The image `make images` builds (a local name: push it to your registry and set
# --shard-image / the chart's shardImage, or spec.template, to use another).
DEFAULT_IMAGE = "shard-server:0.1.0"
