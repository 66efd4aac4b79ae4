"""The condition types and reasons the operator writes, shared by the controller
(:mod:`.decisions`) and by ``start_shard`` (:mod:`.api`), which reads a Shard's
``Registered`` condition to learn its outcome."""

from __future__ import annotations

# Condition types
TYPE_READY = "Ready"
TYPE_REGISTERED = "Registered"  # a Shard's
# kstatus's (sigs.k8s.io/cli-utils/pkg/kstatus), for a ShardSet and a Shard alike:
# Reconciling=True -> InProgress; Stalled=True -> Failed; neither -> Current.
TYPE_RECONCILING = "Reconciling"  # the operator is still at work on it
TYPE_STALLED = "Stalled"  # it cannot make progress without a change to the spec
TYPE_DEGRADED = "Degraded"  # a ShardSet's

# A Shard's Ready condition
POD_READY = "PodReady"
POD_NOT_READY = "PodNotReady"  # unless the kubelet says why (its waiting reason)
POD_MISSING = "PodMissing"
CLAIM_PENDING = "ClaimPending"  # the Pod waits for its PersistentVolumeClaim

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
SHARD_DELETED = "Deleted"  # start_shard's: the new Shard was deleted while it waited

# A ShardSet's conditions
ALL_SHARDS_READY = "AllShardsReady"
CONVERGED = "Converged"
PROGRESSING = "Progressing"
HEALTHY = "Healthy"
INVALID_SCHEMA = "InvalidSchema"
NODE_ID_CONFLICT = "NodeIdConflict"
RECONCILE_ERROR = "ReconcileError"
CRASH_LOOP = "CrashLoopBackOff"
ROLLING_UPDATE = "RollingUpdate"  # replacing outdated pods within maxUnavailable
ROLLOUT_WAITING = "WaitingForReplacements"  # the budget is spent on pods not Ready yet
CLAIM_PROBLEM = "ClaimProblem"  # a claim cannot be grown, or is not the shard's
TEMPLATE_REFUSED = "TemplateRefused"  # the API server refuses the pods of the template

# Why a ShardSet is Stalled: only a change to its spec (or to what it names) helps.
STALLED_REASONS = (INVALID_SCHEMA, TEMPLATE_REFUSED, KEY_MAP_FULL, CLAIM_PROBLEM,
                   NODE_ID_CONFLICT)
