"""Step 2: each supervised Shard's claim (with a volumeClaimTemplate), Service and Pod
are made or restored; pods of an outdated template are replaced within the update
strategy's budget (:mod:`..rollout`); the ShardSet's PodDisruptionBudget follows it."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Any

from .. import budget, desired, volumes
from ..cache import ShardSetView, ShardView
from ..decisions import Pass, ShardOutcome, metadata_patch, pods_to_roll, service_patch
from ..desired import Workload
from ..reasons import CLAIM_PROBLEM, TEMPLATE_REFUSED
from ..spec import ShardSetSpec
from ..writes import CONFLICT_IGNORE, Writes

# How long a rollout's pass waits for the pods it deleted to be gone, to make their
# replacements itself (on KWOK, a deleted pod is gone within tens of milliseconds; a
# kubelet takes the pod's grace period: the watch event's pass makes those).
REPLACE_WAIT_SECONDS = 2.0
REPLACE_POLL_SECONDS = 0.01


async def ensure(writes: Writes, namespace: str, owner: ShardSetView, shards: list[ShardView],
                 run: Pass) -> None:
    """Every shard's workloads (:func:`ensure_one`, unless :func:`settled`), then
    :func:`finish`."""
    desired.of(writes.cache).keep_only(namespace, owner.node_id, {s.name for s in shards})
    await writes.bounded(partial(ensure_one, writes, namespace, s, owner, run)
                         for s in shards if not settled(writes, namespace, s, owner, run))
    await finish(writes, namespace, owner, shards, run)


def settled(writes: Writes, namespace: str, shard: ShardView, owner: ShardSetView, run: Pass
            ) -> bool:
    """Whether ``shard`` needs no :func:`ensure_one` in this pass: its key is unreadable,
    or its Service and Pod are the very views a pass found matching (its outcome is then
    known at once, with no coroutine to run: at 1,000 shards, most passes of a rollout
    change one or two of them)."""
    run.claims = owner.spec.volume_claim_template is not None
    if shard.key is None:
        return True
    outcome = run.outcomes.setdefault(shard.name, ShardOutcome())
    return not run.claims and _unchanged(writes, namespace, shard, owner, outcome)


async def ensure_one(writes: Writes, namespace: str, shard: ShardView, owner: ShardSetView,
                     run: Pass) -> None:
    """One shard's claim, Service and Pod (nothing for a Shard whose key is unreadable)."""
    run.claims = owner.spec.volume_claim_template is not None
    if shard.key is not None:
        await _ensure_one(writes, namespace, shard, owner, run)


async def finish(writes: Writes, namespace: str, owner: ShardSetView, shards: list[ShardView],
                 run: Pass) -> None:
    """Once every shard's workloads are ensured: the PodDisruptionBudget, and the
    outdated pods to replace now, within the update strategy (their replacements made
    in this pass once the old pods are gone)."""
    run.claims = owner.spec.volume_claim_template is not None
    await _ensure_budget(writes, namespace, owner, run)
    outdated = [name for name, o in run.outcomes.items() if o.outdated]
    if not outdated or run.problems:  # an invalid generation rolls nothing
        return
    # A template the API server refuses must never take down running Pods: ask first,
    # once per generation (until a pod of it fails to be made: then ask again).
    replacement = run.outcomes[outdated[0]].replacement
    assert replacement is not None
    if run.template_refused or any(o.error for o in run.outcomes.values()):
        desired.of(writes.cache).forget_admitted(namespace, owner)
    if not desired.of(writes.cache).admitted(namespace, owner):
        refusal = await writes.refused(replacement)
        if refusal is not None:
            run.template_refused.append("the new pod template is refused by the API "
                                        f"server, running pods are kept: {refusal}")
            return
        desired.of(writes.cache).admit(namespace, owner)
    run.rolling = True
    victims = {n: run.outcomes[n].pod for n in pods_to_roll(run.outcomes, run.strategy)}
    failed = len(run.errors)
    await writes.bounded(partial(_delete, writes, namespace, pod, run)
                         for pod in victims.values())
    if not victims or len(run.errors) > failed:
        return
    # The replacements are made in this pass, as soon as the old pods are gone (their
    # watch events say so): one pass per replaced pod instead of one for the delete and
    # one for the create. The budget was checked for the deletes; a replacement only
    # takes the place of its own pod.
    gone = await _until_gone(writes, namespace, victims)
    by_name = {s.name: s for s in shards}
    for name in gone:
        run.outcomes[name] = ShardOutcome()
    await writes.bounded(partial(_ensure_one, writes, namespace, by_name[n], owner, run)
                         for n in gone)


async def _delete(writes: Writes, namespace: str, pod: Any, run: Pass) -> None:
    """Delete a pod being replaced, and show it going in the cache at once: the next
    pass must count it unavailable even before its deletion's watch event arrives (else
    it would see room in the budget that is not there)."""
    failed: list[str] = []
    await writes.delete("Pod", namespace, pod, failed)
    run.errors.extend(failed)
    current = writes.cache.get("Pod", namespace, pod.name)
    if not failed and current is not None and current.uid == pod.uid:
        current.deleting = True


async def _until_gone(writes: Writes, namespace: str, pods: dict[str, Any],
                      timeout: float = REPLACE_WAIT_SECONDS) -> list[str]:
    """The names of ``pods`` whose incarnation has left the cache within ``timeout``
    seconds (the others are left to the pass their deletion's watch event brings)."""
    deadline = time.monotonic() + timeout
    while True:
        gone = [n for n, pod in pods.items()
                if getattr(writes.cache.get("Pod", namespace, n), "uid", None) != pod.uid]
        if len(gone) == len(pods) or time.monotonic() >= deadline:
            return [n for n in gone if writes.cache.get("Pod", namespace, n) is None]
        await asyncio.sleep(REPLACE_POLL_SECONDS)


async def _ensure_budget(writes: Writes, namespace: str, owner: ShardSetView, run: Pass
                         ) -> None:
    """The ShardSet's PodDisruptionBudget, made or brought back to the strategy."""
    body = {"metadata": {**owner.body["metadata"]},
            "spec": {"nodeId": owner.node_id}}
    desired = budget.pod_disruption_budget(body, run.strategy, len(run.outcomes))
    name = desired["metadata"]["name"]
    current = writes.cache.get("PodDisruptionBudget", namespace, name)
    if current is None:
        await writes.create(desired, run.errors, conflict=CONFLICT_IGNORE)
    elif not current.deleting:
        patch = budget.budget_patch({"spec": current.spec}, desired)
        if patch:
            await writes.patch("PodDisruptionBudget", namespace, name, patch, run.errors)


def _unchanged(writes: Writes, namespace: str, shard: ShardView, owner: ShardSetView,
               outcome: ShardOutcome) -> bool:
    """A Shard whose Service and Pod are the very views a pass found matching (no claim
    to look after): its outcome is known at once, with no coroutine to run for it (at
    1,000 shards, most passes of a rollout change one or two of them)."""
    memo = desired.of(writes.cache).workload(shard, owner, namespace, claim=False)
    service = writes.cache.get("Service", namespace, shard.name)
    pod = writes.cache.get("Pod", namespace, shard.name)
    if not memo.unchanged(service, pod):
        return False
    outcome.service, outcome.pod = service, pod
    outcome.outdated = pod.template_hash != memo.template_hash
    outcome.replacement = memo.pod if outcome.outdated else None
    return True


async def _ensure_one(writes: Writes, namespace: str, shard: ShardView, owner: ShardSetView,
                      run: Pass) -> None:
    """The claim, then the Service and the Pod of one Shard, made or restored."""
    outcome = run.outcomes.setdefault(shard.name, ShardOutcome())
    spec = owner.spec
    usable = True
    claim = spec.volume_claim_template is not None
    if claim:
        full = {"metadata": {**shard.body["metadata"]}, "spec": shard.body["spec"]}
        usable = await _claim(writes, namespace, shard, full, spec, run, outcome)
    memo = desired.of(writes.cache).workload(shard, owner, namespace, claim=claim)
    await asyncio.gather(
        _service(writes, namespace, shard, memo, run, outcome),
        _pod(writes, namespace, shard, memo, run, outcome, may_create=usable))


async def _claim(writes: Writes, namespace: str, shard: ShardView, full: dict[str, Any],
                 spec: ShardSetSpec, run: Pass, outcome: ShardOutcome) -> bool:
    """The Shard's claim, made, taken up again or grown; False when its pod must not be
    made (the claim of that name is someone else's, or being deleted)."""
    desired = volumes.desired_claim(full, spec.claims())
    assert desired is not None
    name = desired["metadata"]["name"]
    claim = writes.cache.get("PersistentVolumeClaim", namespace, name)
    if claim is None:
        claim = await _create(writes, desired, run, outcome)
    elif claim.deleting:
        # Not a problem to report: the claim goes, and the next pass makes it again.
        outcome.error = f"its PersistentVolumeClaim {name} is being deleted; the shard waits"
        return False
    elif not volumes.adoptable(claim.as_object(), shard.name):
        outcome.error = (f"a PersistentVolumeClaim {name} exists that this operator did not "
                         "make for this shard; it is not used")
        outcome.stalled = (CLAIM_PROBLEM, outcome.error)
        run.claim_problems.append(outcome.error)
        return False
    else:
        change = volumes.claim_change(claim.as_object(), desired, shard.uid)
        if change.problem:
            run.claim_problems.append(change.problem)
        if change.patch:
            refused: list[str] = []
            patched = await writes.patch("PersistentVolumeClaim", namespace, name,
                                         change.patch, refused)
            # Refused where the StorageClass cannot expand: said in the status, not
            # retried as a failure (the next pass tries again).
            run.claim_problems.extend(f"claim {name} cannot be changed: {r}" for r in refused)
            claim = patched or claim
        if claim.resize_problem:
            run.claim_problems.append(f"claim {name}: {claim.resize_problem}")
    outcome.claim = claim
    return True


async def _create(writes: Writes, body: dict[str, Any], run: Pass, outcome: ShardOutcome
                  ) -> Any:
    """Create a Shard's claim, Service or Pod. A Pod the API server finds invalid is
    the template's fault (only a spec change helps): ``run.template_refused``."""
    failed: list[str] = []
    invalid: list[str] = []
    view = await writes.create(body, failed, conflict=CONFLICT_IGNORE,
                               invalid=invalid if body["kind"] == "Pod" else None)
    if failed or invalid:
        outcome.error = (failed or invalid)[0]
        run.errors.extend(failed)
        run.template_refused.extend(invalid)
        if invalid:
            outcome.stalled = (TEMPLATE_REFUSED, invalid[0])
    return view


async def _service(writes: Writes, namespace: str, shard: ShardView, memo: Workload,
                   run: Pass, outcome: ShardOutcome) -> None:
    service = writes.cache.get("Service", namespace, shard.name)
    if service is None:
        service = await _create(writes, memo.service, run, outcome)
    elif not service.deleting:
        patch = service_patch(service, memo.service, shard.uid)
        if patch:
            service = await writes.patch("Service", namespace, shard.name, patch, run.errors)
        else:
            memo.service_seen = service
    outcome.service = service if service is not None and not service.deleting else None


async def _pod(writes: Writes, namespace: str, shard: ShardView, memo: Workload,
               run: Pass, outcome: ShardOutcome, *, may_create: bool) -> None:
    pod = writes.cache.get("Pod", namespace, shard.name)
    if pod is None and not may_create:
        pass
    elif pod is None:
        pod = await _create(writes, memo.pod, run, outcome)
        outcome.pod_event_due = not outcome.error
    elif not pod.deleting:
        patch = metadata_patch(pod, memo.pod, shard.uid)
        if patch:
            pod = await writes.patch("Pod", namespace, shard.name, patch, run.errors) or pod
        else:
            memo.pod_seen = pod
        outcome.outdated = pod.template_hash != memo.template_hash
        outcome.replacement = memo.pod if outcome.outdated else None
    outcome.pod = pod if pod is not None and not pod.deleting else None
