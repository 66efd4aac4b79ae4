"""The reasons the operator writes in conditions, shared by the controller and by
``start_shard``, which reads a Shard's ``Registered`` condition to learn its outcome."""

from __future__ import annotations

# A Shard's Registered condition
REGISTERED = "Registered"
WORKLOAD_MISSING = "WorkloadMissing"  # waiting for its Pod and Service
KEY_MAP_PENDING = "KeyMapPending"  # the key map write failed transiently; it is retried
KEY_MAP_FULL = "KeyMapFull"  # the key does not fit in the 1 MiB ConfigMap
KEY_MAP_UPDATE_FAILED = "KeyMapUpdateFailed"  # the API server refused the write for good
INVALID_KEY = "InvalidKey"  # the spec's key cannot be decoded
NAME_NOT_DERIVED = "NameNotDerived"  # a hand-made Shard whose name is not <nodeId>-<hash>
NO_SHARD_SET = "NoShardSet"

# What start_shard reports as "key map update failed" (a retry cannot fix these).
TERMINAL_REGISTRATION_FAILURES = (KEY_MAP_FULL, KEY_MAP_UPDATE_FAILED, INVALID_KEY,
                                  NAME_NOT_DERIVED)

# A ShardSet's conditions
INVALID_SCHEMA = "InvalidSchema"
NODE_ID_CONFLICT = "NodeIdConflict"
RECONCILE_ERROR = "ReconcileError"
CRASH_LOOP = "CrashLoopBackOff"
