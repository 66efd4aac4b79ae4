"""Step 2: each supervised Shard's claim (with a volumeClaimTemplate), Service and Pod
are made or restored; pods of an outdated template are replaced within the update
strategy's budget (:mod:`..rollout`); the ShardSet's PodDisruptionBudget follows it."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from .. import budget, render, volumes
from ..cache import ShardSetView, ShardView
from ..constants import ANNOTATION_TEMPLATE_HASH
from ..decisions import Pass, ShardOutcome, metadata_patch, pods_to_roll, service_patch
from ..reasons import CLAIM_PROBLEM, TEMPLATE_REFUSED
from ..spec import ShardSetSpec
from ..writes import CONFLICT_IGNORE, Writes


async def ensure(writes: Writes, namespace: str, owner: ShardSetView, shards: list[ShardView],
                 run: Pass) -> None:
    """Every shard's workloads (:func:`ensure_one`), then :func:`finish`."""
    await writes.bounded(partial(ensure_one, writes, namespace, s, owner.spec, run)
                         for s in shards)
    await finish(writes, namespace, owner, run)


async def ensure_one(writes: Writes, namespace: str, shard: ShardView, spec: ShardSetSpec,
                     run: Pass) -> None:
    """One shard's claim, Service and Pod (nothing for a Shard whose key is unreadable)."""
    run.claims = spec.volume_claim_template is not None
    if shard.key is not None:
        await _ensure_one(writes, namespace, shard, spec, run)


async def finish(writes: Writes, namespace: str, owner: ShardSetView, run: Pass) -> None:
    """Once every shard's workloads are ensured: the PodDisruptionBudget, and the
    outdated pods to replace now, within the update strategy."""
    run.claims = owner.spec.volume_claim_template is not None
    await _ensure_budget(writes, namespace, owner, run)
    outdated = [name for name, o in run.outcomes.items() if o.outdated]
    if not outdated or run.problems:  # an invalid generation rolls nothing
        return
    # A template the API server refuses must never take down running Pods: ask first.
    replacement = run.outcomes[outdated[0]].replacement
    assert replacement is not None
    refusal = await writes.refused(replacement)
    if refusal is not None:
        run.template_refused.append("the new pod template is refused by the API server, "
                                    f"running pods are kept: {refusal}")
        return
    await writes.bounded(partial(_delete, writes, namespace, run.outcomes[n].pod, run)
                         for n in pods_to_roll(run.outcomes, run.strategy))


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


async def _ensure_one(writes: Writes, namespace: str, shard: ShardView, spec: ShardSetSpec,
                      run: Pass) -> None:
    """The claim, then the Service and the Pod of one Shard, made or restored."""
    outcome = run.outcomes.setdefault(shard.name, ShardOutcome())
    full = {"metadata": {**shard.body["metadata"]}, "spec": shard.body["spec"]}
    usable = True
    if spec.volume_claim_template is not None:
        usable = await _claim(writes, namespace, shard, full, spec, run, outcome)
    await asyncio.gather(
        _service(writes, namespace, shard, full, run, outcome),
        _pod(writes, namespace, shard, full, spec.template, run, outcome,
             claim=spec.volume_claim_template is not None, may_create=usable))


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


async def _service(writes: Writes, namespace: str, shard: ShardView, full: dict[str, Any],
                   run: Pass, outcome: ShardOutcome) -> None:
    assert shard.key is not None
    desired = render.service(full, shard.key)
    service = writes.cache.get("Service", namespace, shard.name)
    if service is None:
        service = await _create(writes, desired, run, outcome)
    elif not service.deleting:
        patch = service_patch(service, desired, shard.uid)
        if patch:
            service = await writes.patch("Service", namespace, shard.name, patch, run.errors)
    outcome.service = service if service is not None and not service.deleting else None


async def _pod(writes: Writes, namespace: str, shard: ShardView, full: dict[str, Any],
               template: dict[str, Any] | None, run: Pass, outcome: ShardOutcome, *,
               claim: bool, may_create: bool) -> None:
    assert shard.key is not None
    desired = render.pod(full, shard.key, template, claim=claim)
    pod = writes.cache.get("Pod", namespace, shard.name)
    if pod is None and not may_create:
        pass
    elif pod is None:
        pod = await _create(writes, desired, run, outcome)
        outcome.pod_event_due = not outcome.error
    elif not pod.deleting:
        patch = metadata_patch(pod, desired, shard.uid)
        if patch:
            pod = await writes.patch("Pod", namespace, shard.name, patch, run.errors) or pod
        outcome.outdated = (
            pod.template_hash != desired["metadata"]["annotations"][ANNOTATION_TEMPLATE_HASH])
        outcome.replacement = desired if outcome.outdated else None
    outcome.pod = pod if pod is not None and not pod.deleting else None
