"""The controller's decisions, as pure functions of what a pass observed: which Shards
are supervised, which pods to roll, what fits in the key map, what to patch back, what
status to write and which event to post. No I/O and no clock: the steps
(:mod:`.steps`) gather the inputs, call these, and write what they return.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import conditions, keymap
from .cache import ClaimView, ConfigMapView, PodView, ServiceView, ShardSetView, ShardView
from .constants import (
    ANNOTATION_KEY,
    KEY_MAP_MAX_BYTES,
    LABEL_MANAGED_BY,
    LABEL_NODE_ID,
    LABEL_SHARD,
    ORIGIN_SCHEMA,
    SHARD_PORT,
)
from .failing import is_failing
from .keys import Key, key_map_name, key_to_json, shard_address, shard_name
from .missing import MISSING
from .reasons import (
    ALL_SHARDS_READY,
    CLAIM_PENDING,
    CLAIM_PROBLEM,
    CONVERGED,
    CRASH_LOOP,
    HEALTHY,
    INVALID_KEY,
    INVALID_SCHEMA,
    KEY_MAP_FULL,
    NAME_NOT_DERIVED,
    NODE_ID_CONFLICT,
    POD_MISSING,
    POD_NOT_READY,
    POD_READY,
    PROGRESSING,
    RECONCILE_ERROR,
    REGISTERED,
    ROLLING_UPDATE,
    ROLLOUT_WAITING,
    STALLED_REASONS,
    TEMPLATE_REFUSED,
    TERMINAL_REGISTRATION_FAILURES,
    TYPE_DEGRADED,
    TYPE_READY,
    TYPE_RECONCILING,
    TYPE_REGISTERED,
    TYPE_STALLED,
    WORKLOAD_MISSING,
)
from .rollout import RolloutStatus, ShardPod, UpdateStrategy, to_replace

RESTARTING_LIST_MAX = 50
PROBLEMS_LISTED_MAX = 20
STATE_IN_CLAIMS = "a PersistentVolumeClaim per shard"
STATE_IN_PODS = "emptyDir: a shard's state lives only as long as its pod"


@dataclass
class ShardOutcome:
    """What one pass found for one Shard."""

    pod: PodView | None = None
    service: ServiceView | None = None
    error: str = ""  # why its Pod or Service could not be made
    outdated: bool = False
    replacement: dict[str, Any] | None = None  # the Pod to roll to, when outdated
    pod_event_due: bool = False  # its Pod was just created: a watch event brings a new pass
    claim: ClaimView | None = None  # its PersistentVolumeClaim, with a volumeClaimTemplate
    stalled: tuple[str, str] | None = None  # (reason, message): only a spec change helps


@dataclass
class Pass:
    """Everything one reconcile learns, for the status it writes at the end."""

    problems: list[str] = field(default_factory=list)  # what makes the generation invalid
    errors: list[str] = field(default_factory=list)  # failed writes, shown in status
    retry: list[str] = field(default_factory=list)  # transient failures: retried, logged
    outcomes: dict[str, ShardOutcome] = field(default_factory=dict)
    registered: set[str] = field(default_factory=set)
    unregistered_reason: dict[str, tuple[str, str]] = field(default_factory=dict)
    recheck: float | None = None  # seconds until Degraded may clear with no event
    strategy: UpdateStrategy = field(default_factory=UpdateStrategy)
    claims: bool = False  # the ShardSet has a volumeClaimTemplate
    claim_problems: list[str] = field(default_factory=list)  # what claims cannot do
    template_refused: list[str] = field(default_factory=list)  # the API server's refusals
    rolling: bool = False  # a rollout is under way: the next pass follows without a pause


# ----- which Shards ------------------------------------------------------------------------


def split_refused(shards: Iterable[ShardView]) -> tuple[list[ShardView], list[ShardView]]:
    """(supervised, refused): a Shard is supervised only under the name derived from its
    node id and key, the name ``start_shard`` and the schema give it."""
    ok: list[ShardView] = []
    refused: list[ShardView] = []
    for shard in shards:
        derived = shard.key is not None and shard.name == shard_name(shard.node_id, shard.key)
        (ok if derived else refused).append(shard)
    return ok, refused


def collisions(wanted: Mapping[str, tuple[Key, Any]], existing: Mapping[str, ShardView]
               ) -> list[str]:
    """Wanted keys whose name an existing Shard of another key holds (never merged)."""
    problems = []
    for name, (key, _) in wanted.items():
        have = existing.get(name)
        if have is not None and have.key is not None and have.key != key:
            problems.append(
                f"key {key_to_json(key)} hashes to the name of Shard {name}, which holds "
                f"key {key_to_json(have.key)}: hash collision, not merged")
    return problems


def stale_shards(owner: ShardSetView, existing: Iterable[ShardView], wanted: Iterable[str]
                 ) -> list[ShardView]:
    """The schema Shards of ``owner`` that the schema no longer lists, to delete under
    ``removedKeyPolicy: Delete`` (never a started Shard; nothing under Retain)."""
    if not owner.spec.deletes_removed_keys:
        return []
    names = set(wanted)
    return [s for s in existing
            if s.origin == ORIGIN_SCHEMA and owner.uid in s.owners and s.name not in names]


# ----- workloads ---------------------------------------------------------------------------


def ports_match(ports: list[dict[str, Any]]) -> bool:
    return any(p.get("port") == SHARD_PORT and p.get("targetPort") in (SHARD_PORT, "shard")
               for p in ports)


def metadata_patch(view: PodView | ServiceView, desired: dict[str, Any], shard_uid: str
                   ) -> dict[str, Any]:
    """Restore labels, the key annotation and the owner reference if someone changed them."""
    meta = desired["metadata"]
    patch: dict[str, Any] = {}
    labels = {k: v for k, v in meta["labels"].items()
              if k in (LABEL_MANAGED_BY, LABEL_NODE_ID, LABEL_SHARD) and view.labels.get(k) != v}
    if labels:
        patch.setdefault("metadata", {})["labels"] = labels
    if view.annotations.get(ANNOTATION_KEY) != meta["annotations"][ANNOTATION_KEY]:
        patch.setdefault("metadata", {})["annotations"] = {
            ANNOTATION_KEY: meta["annotations"][ANNOTATION_KEY]}
    if shard_uid not in view.owners:
        patch.setdefault("metadata", {})["ownerReferences"] = meta["ownerReferences"]
    return patch


def service_patch(service: ServiceView, desired: dict[str, Any], shard_uid: str
                  ) -> dict[str, Any]:
    """:func:`metadata_patch`, plus the selector and port if they drifted. A label added
    to the selector is sent as null (removed): a patch merges maps, and the extra label
    would leave the Service selecting no pod."""
    patch = metadata_patch(service, desired, shard_uid)
    selector = desired["spec"]["selector"]
    if service.selector != selector or not ports_match(service.ports):
        added = {label: None for label in service.selector if label not in selector}
        patch.setdefault("spec", {}).update({"selector": {**selector, **added},
                                             "ports": desired["spec"]["ports"]})
    return patch


def rollout_pods(outcomes: Mapping[str, ShardOutcome]) -> list[ShardPod]:
    return [ShardPod(name, exists=o.pod is not None, ready=bool(o.pod and o.pod.ready),
                     outdated=o.outdated) for name, o in outcomes.items()]


def pods_to_roll(outcomes: Mapping[str, ShardOutcome], strategy: UpdateStrategy
                 ) -> list[str]:
    """The outdated pods to delete now (:func:`shard_operator.rollout.to_replace`): the
    shards unavailable at once, counting those already down, stay within the update
    strategy's ``maxUnavailable``; not-ready ones first; none under ``OnDelete``."""
    return to_replace(rollout_pods(outcomes), strategy)


def rollout_status(run: Pass) -> RolloutStatus:
    from .rollout import status as rollout_of
    return rollout_of(rollout_pods(run.outcomes), run.strategy)


# ----- the key map -------------------------------------------------------------------------


@dataclass
class KeyMapPlan:
    entries: dict[str, Key]  # what the key map lists: shard name -> key
    unregistered: dict[str, tuple[str, str]]  # shard name -> (reason, message)
    data: dict[str, str]  # the ConfigMap's data


def plan_key_map(node_id: str, namespace: str, shards: Iterable[ShardView],
                 outcomes: Mapping[str, ShardOutcome], max_bytes: int = KEY_MAP_MAX_BYTES
                 ) -> KeyMapPlan:
    """What the key map lists: every shard whose Pod and Service exist, oldest first,
    while the map stays under ``max_bytes``; and why each other shard is not listed."""
    name = key_map_name(node_id)
    entries: dict[str, Key] = {}
    unregistered: dict[str, tuple[str, str]] = {}
    size = keymap.data_size(keymap.render(node_id, namespace, {}))
    for shard in sorted(shards, key=lambda s: (s.created, s.name)):
        outcome = outcomes.get(shard.name)
        if shard.key is None:
            unregistered[shard.name] = (INVALID_KEY, "the key cannot be decoded")
            continue
        if outcome is None or outcome.pod is None or outcome.service is None:
            unregistered[shard.name] = (
                WORKLOAD_MISSING, outcome.error if outcome and outcome.error
                else "waiting for its Pod and Service")
            continue
        added = keymap.entry_size(shard.name, shard.key)
        if size + added > max_bytes:
            unregistered[shard.name] = (
                KEY_MAP_FULL, f"the key map {name} would exceed {max_bytes} bytes")
            continue
        size += added
        entries[shard.name] = shard.key
    return KeyMapPlan(entries, unregistered, keymap.render(node_id, namespace, entries))


def key_map_differs(current: ConfigMapView, desired: dict[str, Any], owner_uid: str) -> bool:
    """Whether the key map ConfigMap must be replaced by ``desired``."""
    return current.data != desired["data"] or owner_uid not in current.owners or any(
        current.labels.get(k) != v for k, v in desired["metadata"]["labels"].items())


def still_listed(plan: KeyMapPlan, listed: Mapping[str, str]) -> set[str]:
    """After a failed key map write: the planned entries the map already lists."""
    return {n for n in plan.entries if listed.get(n) == plan.data[n]}


KEY_MAP_SLICE_ENTRIES = 500  # a slice is written when this many new entries are due,
KEY_MAP_SLICE_SECONDS = 1.0  # or this long after the first of them became due


def slice_wait(due: int, first_due_at: float | None, now: float, *,
               entries: int = KEY_MAP_SLICE_ENTRIES, seconds: float = KEY_MAP_SLICE_SECONDS
               ) -> float | None:
    """While a pass makes workloads: how long to wait before writing the key map entries
    that are due (shards whose Pod and Service now exist, not yet listed); 0: write now
    (``entries`` are due, or the first has waited ``seconds``); None: nothing is due."""
    if due <= 0 or first_due_at is None:
        return None
    if due >= entries:
        return 0.0
    return max(0.0, first_due_at + seconds - now)


def key_map_slice(listed: Mapping[str, str], due: Iterable[tuple[str, Key]], node_id: str,
                  namespace: str, max_bytes: int = KEY_MAP_MAX_BYTES) -> dict[str, str] | None:
    """The key map data of a slice written during a pass: what the map lists now, left as
    it is, plus the ``due`` entries (shard name, key) in the order given, while the map
    stays under ``max_bytes``; None if that adds nothing.

    A slice only adds: an entry to change or drop, and the order in which shards keep
    their place under the size limit (oldest first, :func:`plan_key_map`), wait for the
    write at the end of the pass."""
    data = dict(listed) if listed else keymap.render(node_id, namespace, {})
    size = keymap.data_size(data)
    added = False
    for name, key in due:
        if name in data:
            continue
        grows = keymap.entry_size(name, key)
        if size + grows > max_bytes:
            break
        data[name] = key_to_json(key)
        size += grows
        added = True
    return data if added else None


# ----- pacing ------------------------------------------------------------------------------


def pass_pause(busy: float, elapsed: float, cap: float) -> float:
    """Seconds before the next pass of a node id may start, after one that kept the CPU
    ``busy`` for that long in ``elapsed`` seconds: only the CPU time beyond the time it
    spent waiting (on the API server, while watch events were handled), at most
    ``cap``. A pass that mostly waited has let the watches keep up and needs no pause."""
    return min(cap, max(0.0, busy - max(0.0, elapsed - busy)))


# ----- status ------------------------------------------------------------------------------


def status_differs(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    """Compare statuses ignoring condition timestamps (set only on a real change) and
    the conditions' order. Runs for every shard in every pass: the common case
    (conditions of distinct types) is compared in place, without copies."""
    for name, value in desired.items():
        if name != "conditions" and current.get(name, MISSING) != value:
            return True
    if any(name not in desired for name in current if name != "conditions"):
        return True
    mine, theirs = current.get("conditions") or [], desired.get("conditions") or []
    if len(mine) != len(theirs):
        return True
    by_type = {c.get("type", ""): c for c in mine}
    if len(by_type) != len(mine) or len({c.get("type", "") for c in theirs}) != len(theirs):
        return _status_differs_slowly(current, desired)
    for want in theirs:
        have = by_type.get(want.get("type", ""))
        if have is None or _without_time(have) != _without_time(want):
            return True
    return False


def _without_time(condition: dict[str, Any]) -> dict[str, Any]:
    if "lastTransitionTime" not in condition:
        return condition
    return {k: v for k, v in condition.items() if k != "lastTransitionTime"}


def _status_differs_slowly(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    """:func:`status_differs` for conditions with repeated types: sorted copies."""
    def strip(status: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in status.items() if k != "conditions"}
        out["conditions"] = sorted(
            ({k: v for k, v in c.items() if k != "lastTransitionTime"}
             for c in status.get("conditions") or []), key=lambda c: c.get("type", ""))
        return out
    return strip(current) != strip(desired)


def transition(before: list[dict[str, Any]] | None, after: list[dict[str, Any]],
               kind: str) -> dict[str, Any] | None:
    """The condition ``kind`` in ``after`` if its status or reason differs from ``before``."""
    new, old = conditions.find(after, kind), conditions.find(before, kind)
    if new and (old is None or (old["status"], old["reason"]) != (new["status"], new["reason"])):
        return new
    return None


def status_event(before: list[dict[str, Any]] | None, after: list[dict[str, Any]]
                 ) -> tuple[str, str, str] | None:
    """``(type, reason, message)`` of the one event a ShardSet's status change deserves:
    a new failure (with its cause), else a change of readiness; or None."""
    degraded = transition(before, after, TYPE_DEGRADED)
    ready = transition(before, after, TYPE_READY)
    if degraded and degraded["status"] == "True":
        return "Warning", degraded["reason"], degraded["message"]
    if ready:
        kind = "Normal" if ready["status"] == "True" or ready["reason"] == PROGRESSING \
            else "Warning"
        return kind, ready["reason"], ready["message"]
    return None


def refused_status(shard: ShardView) -> dict[str, Any]:
    """The status of a Shard that is not supervised (see :func:`split_refused`)."""
    if shard.key is None:
        message = "its spec.key cannot be decoded; it is not supervised"
    else:
        expected = shard_name(shard.node_id, shard.key)
        message = (f"a Shard's name must be derived from its node id and key; this key's is "
                   f"{expected}, not {shard.name}. It gets no Pod, Service or key map entry: "
                   f"delete it and use start_shard (shardctl start-shard), or create it as "
                   f"{expected}")
    reason = NAME_NOT_DERIVED if shard.key is not None else INVALID_KEY
    return {
        "observedGeneration": shard.generation, "phase": "Refused", "ready": False,
        "restarts": 0, "registered": False,
        "conditions": [
            conditions.condition(type_, type_ == TYPE_STALLED, reason, message,
                                 shard.generation)
            for type_ in (TYPE_READY, TYPE_REGISTERED, TYPE_RECONCILING, TYPE_STALLED)],
    }


def duplicate_status(other: ShardSetView, owner: ShardSetView) -> tuple[dict[str, Any], str]:
    """The status of a second ShardSet for ``owner``'s node id, and its message."""
    message = (f"nodeId {other.node_id!r} is already used by ShardSet {owner.name} in "
               "this namespace; this ShardSet is ignored until that one is deleted")
    cond = [conditions.condition(type_, type_ in (TYPE_STALLED, TYPE_DEGRADED),
                                 NODE_ID_CONFLICT, message, other.generation)
            for type_ in (TYPE_READY, TYPE_RECONCILING, TYPE_STALLED, TYPE_DEGRADED)]
    return {"observedGeneration": other.generation, "nodeId": other.node_id,
            "desiredShards": 0, "registeredShards": 0, "readyShards": 0,
            "conditions": cond}, message


def kstatus_conditions(ready: bool, reason: str, message: str,
                      stalled: tuple[str, str] | None, generation: int
                      ) -> list[dict[str, Any]]:
    """kstatus's pair beside Ready: ``Reconciling`` True while the operator is still at
    work (not Ready, not stalled); ``Stalled`` True, with its cause, when only a change to
    the spec can help. Never both: kstatus reads the first it finds."""
    if stalled is not None:
        return [conditions.condition(TYPE_RECONCILING, False, stalled[0],
                                     "stalled: " + stalled[1], generation),
                conditions.condition(TYPE_STALLED, True, *stalled, generation)]
    return [conditions.condition(TYPE_RECONCILING, not ready, reason, message, generation),
            conditions.condition(TYPE_STALLED, False, reason, message, generation)]


def shard_readiness(outcome: ShardOutcome, registered: bool, registration: tuple[str, str],
                    replacing: bool) -> tuple[bool, str, str]:
    """A Shard's Ready condition: (status, reason, message). True only when its Pod is
    Ready, on the current template (or one the update strategy keeps) and registered."""
    pod, claim = outcome.pod, outcome.claim
    if pod is None:
        return False, POD_MISSING, outcome.error or "the Pod does not exist yet"
    if not pod.ready:
        if claim is not None and claim.phase != "Bound" and pod.phase == "Pending":
            return False, CLAIM_PENDING, (
                f"the Pod waits for its PersistentVolumeClaim {claim.name}, which is "
                f"{claim.phase} (is its StorageClass provisioning?)")
        return False, pod.waiting_reason or POD_NOT_READY, f"the Pod is {pod.phase}" + (
            f" ({pod.waiting_reason})" if pod.waiting_reason else "")
    if not registered:
        return False, *registration
    if replacing:
        return False, ROLLING_UPDATE, ("the Pod runs an older template; the rollout "
                                       "replaces it in turn")
    return True, POD_READY, "the shard's Pod is Ready and registered"


def shard_status_inputs(shard: ShardView, run: Pass) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """Everything :func:`shard_status` reads of ``shard`` and ``run``: the views (to
    compare by identity: a change of one is a new view) and the values. Equal inputs
    give an equal status, so a pass need not compute it again."""
    outcome = run.outcomes.get(shard.name) or ShardOutcome()
    return ((shard, outcome.pod, outcome.claim),
            (shard.name in run.registered, run.unregistered_reason.get(shard.name),
             outcome.outdated and run.strategy.replaces(shard.name), outcome.error,
             outcome.stalled))


def same_inputs(before: tuple[tuple[Any, ...], tuple[Any, ...]] | None,
                now: tuple[tuple[Any, ...], tuple[Any, ...]]) -> bool:
    return before is not None and all(a is b for a, b in zip(before[0], now[0], strict=True)) \
        and before[1] == now[1]


def shard_status(shard: ShardView, run: Pass, namespace: str) -> dict[str, Any]:
    outcome = run.outcomes.get(shard.name) or ShardOutcome()
    pod = outcome.pod
    registered = shard.name in run.registered
    registration = run.unregistered_reason.get(shard.name, (REGISTERED, "in the key map"))
    replacing = outcome.outdated and run.strategy.replaces(shard.name)
    ready, reason, message = shard_readiness(outcome, registered, registration, replacing)
    stalled = outcome.stalled or (
        registration if not registered and registration[0] in TERMINAL_REGISTRATION_FAILURES
        else None)
    claim = outcome.claim
    return {
        "observedGeneration": shard.generation,
        "pod": shard.name,
        "service": shard_address(shard.name, namespace),
        "phase": pod.phase if pod else "Missing",
        "ready": bool(pod and pod.ready),
        "restarts": pod.restarts if pod else 0,
        "registered": registered,
        **({"claim": claim.name, "claimPhase": claim.phase} if claim is not None else {}),
        "conditions": [
            conditions.condition(TYPE_READY, ready, reason, message, shard.generation),
            conditions.condition(TYPE_REGISTERED, registered,
                                 REGISTERED if registered else registration[0],
                                 "listed in the key map" if registered else registration[1],
                                 shard.generation),
            *kstatus_conditions(ready, reason, message, stalled, shard.generation),
        ],
    }


def invalid_schema_message(problems: list[str]) -> str:
    shown = "; ".join(problems[:PROBLEMS_LISTED_MAX])
    more = len(problems) - PROBLEMS_LISTED_MAX
    return ("this generation is not applied (no Shard is created or deleted for it; the "
            f"running shards are kept): {shown}" + (f"; and {more} more" if more > 0 else ""))


def degraded_reasons(run: Pass, pods: Mapping[str, PodView], now: float
                     ) -> list[tuple[str, str]]:
    """Why a ShardSet is degraded, most important first: an invalid generation, crash
    loops (:func:`shard_operator.failing.is_failing`, which does not flap), failed
    writes, shards that do not fit in the key map."""
    crashing = [n for n, p in pods.items() if is_failing(p, now)]
    full = [n for n, (r, _) in run.unregistered_reason.items() if r == KEY_MAP_FULL]
    reasons: list[tuple[str, str]] = []
    if run.problems:
        reasons.append((INVALID_SCHEMA, invalid_schema_message(run.problems)))
    if run.template_refused:
        reasons.append((TEMPLATE_REFUSED, listed(run.template_refused)))
    if crashing:
        reasons.append((CRASH_LOOP, f"{len(crashing)} shard(s) crash-looping, "
                        f"e.g. {', '.join(sorted(crashing)[:3])}"))
    if run.errors:
        reasons.append((RECONCILE_ERROR, "; ".join(run.errors[:3])))
    if full:
        reasons.append((KEY_MAP_FULL, f"{len(full)} shard(s) do not fit in the key map"))
    if run.claim_problems:
        reasons.append((CLAIM_PROBLEM, listed(run.claim_problems)))
    return reasons


def listed(items: list[str], shown: int = 3) -> str:
    more = len(items) - shown
    return "; ".join(items[:shown]) + (f"; and {more} more" if more > 0 else "")


def stalled_reason(degraded: list[tuple[str, str]]) -> tuple[str, str] | None:
    """The first of a ShardSet's degraded reasons that only a spec change can clear
    (kstatus's ``Stalled``, which GitOps tools report as Failed), or None."""
    return next((r for r in degraded if r[0] in STALLED_REASONS), None)


def shardset_status(owner: ShardSetView, shards: list[ShardView], run: Pass, now: float
                    ) -> dict[str, Any]:
    """The status of the ShardSet that owns the node id; ``now`` in epoch seconds."""
    generation = owner.generation
    desired = len(shards)
    registered = sum(1 for s in shards if s.name in run.registered)
    pods = {name: o.pod for name, o in run.outcomes.items() if o.pod is not None}
    ready = sum(1 for s in shards if (pod := pods.get(s.name)) is not None and pod.ready)
    restarting = sorted(((p.restarts, n) for n, p in pods.items() if p.restarts > 0),
                        reverse=True)
    degraded = degraded_reasons(run, pods, now)
    stalled = stalled_reason(degraded)
    rollout = rollout_status(run)
    rolling = not rollout.complete and not run.problems  # an invalid generation rolls nothing
    converged = (registered == desired and ready == desired and not degraded
                 and rollout.complete)
    if converged:
        ready_cond = conditions.condition(TYPE_READY, True, ALL_SHARDS_READY,
                                          f"{ready}/{desired} shards ready and registered",
                                          generation)
        reason, message = CONVERGED, "every shard is ready, registered and up to date"
    elif stalled is not None:
        reason, message = stalled
        ready_cond = conditions.condition(TYPE_READY, False, reason, message, generation)
    elif rolling:
        message = (f"rolling out the current template: {rollout.updated}/{desired} shards "
                   f"updated, {rollout.updated_ready} of them ready; {ready}/{desired} ready")
        ready_cond = conditions.condition(TYPE_READY, False,
                                          degraded[0][0] if degraded else ROLLING_UPDATE,
                                          message, generation)
        if rollout.updated > rollout.updated_ready:
            reason = ROLLOUT_WAITING
            message += "; waiting for the replaced shards to be Ready"
        else:
            reason = ROLLING_UPDATE
    else:
        message = f"{ready}/{desired} shards ready, {registered}/{desired} registered"
        if degraded:
            message += f"; {degraded[0][1]}"
        ready_cond = conditions.condition(TYPE_READY, False,
                                          degraded[0][0] if degraded else PROGRESSING,
                                          message, generation)
        reason = PROGRESSING
    if degraded:
        degraded_cond = conditions.condition(TYPE_DEGRADED, True, degraded[0][0], degraded[0][1],
                                             generation)
    else:
        degraded_cond = conditions.condition(TYPE_DEGRADED, False, HEALTHY,
                                             "no shard is failing", generation)
    return {
        "observedGeneration": generation,
        "nodeId": owner.node_id,
        "keyMap": key_map_name(owner.node_id),
        "desiredShards": desired,
        "registeredShards": registered,
        "readyShards": ready,
        "updatedShards": rollout.updated,
        "storage": STATE_IN_CLAIMS if run.claims else STATE_IN_PODS,
        "restarts": sum(p.restarts for p in pods.values()),
        "restartingShards": [{"shard": n, "restarts": r}
                             for r, n in restarting[:RESTARTING_LIST_MAX]],
        "conditions": [ready_cond,
                       *kstatus_conditions(converged, reason, message, stalled, generation),
                       degraded_cond],
    }
