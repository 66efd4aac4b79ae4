"""The memos a pass reuses (shard_operator.desired), the status comparison every pass
makes, and a rollout's pass on an in-memory API server: one pod deleted and its
replacement made in the same pass, never beyond the budget."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shard_operator import decisions, desired, render
from shard_operator.cache import Cache
from shard_operator.steps import workloads
from tests.unit.fakekube import NS, Watched, World, change_template, converged


def shardset_body(generation: int = 1, template: dict[str, Any] | None = None,
                  uid: str = "set-uid") -> dict[str, Any]:
    spec: dict[str, Any] = {"nodeId": "node-1", "schema": [{"key": ["a"]}, {"key": ["b"]}]}
    if template is not None:
        spec["template"] = template
    return {"apiVersion": "shards.anoma.net/v1alpha1", "kind": "ShardSet",
            "metadata": {"name": "set", "namespace": NS, "uid": uid, "generation": generation,
                         "resourceVersion": str(generation)},
            "spec": spec}


def views(generation: int = 1, template: dict[str, Any] | None = None):
    cache = Cache()
    owner = cache.put("ShardSet", NS, shardset_body(generation, template))
    wanted, _ = render.schema_shards(owner.spec, owner.body, NS)
    _, body = next(iter(wanted.values()))
    body = copy.deepcopy(body)
    body["metadata"].update(uid="shard-uid", generation=1, resourceVersion="1")
    shard = cache.put("Shard", NS, body)
    return cache, owner, shard


def test_schema_memo_gives_what_render_gives_and_fresh_containers() -> None:
    cache, owner, _ = views()
    memos = desired.of(cache)
    wanted, problems = memos.schema_shards(owner, NS)
    assert (wanted, problems) == render.schema_shards(owner.spec, owner.body, NS)
    wanted.clear()
    problems.append("added by a caller")
    again, problems_again = memos.schema_shards(owner, NS)
    assert len(again) == 2 and problems_again == []


def test_workload_memo_matches_render_and_follows_every_input() -> None:
    cache, owner, shard = views()
    memos = desired.of(cache)
    memo = memos.workload(shard, owner, NS, claim=False)
    full = {"metadata": {**shard.body["metadata"]}, "spec": shard.body["spec"]}
    assert memo.pod == render.pod(full, shard.key, owner.spec.template)
    assert memo.service == render.service(full, shard.key)
    assert memos.workload(shard, owner, NS, claim=False) is memo  # a hit
    assert memos.workload(shard, owner, NS, claim=True) is not memo  # claims change the pod
    # A new generation of the ShardSet (a template change) renders again.
    newer = cache.put("ShardSet", NS, shardset_body(
        2, {"spec": {"containers": [{"name": "shard", "image": "other:2"}]}}))
    changed = memos.workload(shard, newer, NS, claim=False)
    assert changed.template_hash != memo.template_hash
    assert changed.pod["spec"]["containers"][0]["image"] == "other:2"


def test_workload_memo_keeps_no_bodies_until_a_rollout_asks_again() -> None:
    """The memo of every shard lives as long as the shard: it keeps the template hash,
    not the rendered bodies (34 MB at N = 5,000), except the Pod a rollout replaces."""
    cache, owner, shard = views()
    memo = desired.of(cache).workload(shard, owner, NS, claim=False)
    full = {"metadata": {**shard.body["metadata"]}, "spec": shard.body["spec"]}
    rendered = render.pod(full, shard.key, owner.spec.template)
    assert memo._pod is None and memo._template_hash is None  # nothing rendered yet
    assert memo.pod == rendered and memo._pod is None  # handed over for a creation
    assert memo.template_hash == rendered["metadata"]["annotations"][
        "shards.anoma.net/template-hash"]
    pod_view = cache.put("Pod", NS, {**rendered, "metadata": {
        **rendered["metadata"], "uid": "pod-uid", "resourceVersion": "2"}})
    service_view = cache.put("Service", NS, {**memo.service, "metadata": {
        **memo.service["metadata"], "uid": "svc-uid", "resourceVersion": "3"}})
    memo.pod_seen, memo.service_seen = pod_view, service_view
    replacement = memo.pod
    assert memo.pod is replacement  # kept while a matching Pod was seen
    assert memo.unchanged(service_view, pod_view)
    assert memo._pod is None  # the Pod seen is current: nothing to replace


def test_memos_are_per_cache() -> None:
    first, second = Cache(), Cache()
    assert desired.of(first) is desired.of(first)
    assert desired.of(first) is not desired.of(second)


def test_admission_is_remembered_for_one_generation_only() -> None:
    cache, owner, _ = views()
    memos = desired.of(cache)
    assert not memos.admitted(NS, owner)
    memos.admit(NS, owner)
    assert memos.admitted(NS, owner)
    newer = cache.put("ShardSet", NS, shardset_body(2))
    assert not memos.admitted(NS, newer)
    memos.admit(NS, newer)
    memos.forget_admitted(NS, newer)
    assert not memos.admitted(NS, newer)


def test_status_inputs_compare_views_by_identity_and_the_rest_by_value() -> None:
    _, _, shard = views()
    run = decisions.Pass()
    run.outcomes[shard.name] = decisions.ShardOutcome()
    before = decisions.shard_status_inputs(shard, run)
    assert decisions.same_inputs(before, decisions.shard_status_inputs(shard, run))
    run.registered.add(shard.name)
    assert not decisions.same_inputs(before, decisions.shard_status_inputs(shard, run))
    copied = copy.copy(shard)
    run.registered.clear()
    assert not decisions.same_inputs(before, decisions.shard_status_inputs(copied, run))
    assert not decisions.same_inputs(None, before)


condition = st.fixed_dictionaries(
    {"type": st.sampled_from(["Ready", "Registered", "Stalled"]),
     "status": st.sampled_from(["True", "False"])},
    optional={"reason": st.sampled_from(["A", "B"]),
              "lastTransitionTime": st.sampled_from(["t1", "t2"])})
status = st.fixed_dictionaries(
    {}, optional={"phase": st.sampled_from(["Running", "Pending"]),
                  "ready": st.booleans(), "restarts": st.integers(0, 2),
                  "conditions": st.lists(condition, max_size=3)})


@given(status, status)
def test_status_differs_is_the_sorted_comparison(current, wanted) -> None:
    assert decisions.status_differs(current, wanted) is \
        decisions._status_differs_slowly(current, wanted)
    same = copy.deepcopy(current)
    for c in same.get("conditions") or []:
        c.pop("lastTransitionTime", None)
    assert not decisions.status_differs(current, same)


# ----- a rollout's pass ---------------------------------------------------------------------


def pods(world: World) -> dict[str, str]:
    """Pod name -> image, as stored."""
    return {n: world.kube.stored("Pod", n)["spec"]["containers"][0]["image"]
            for n in world.names("Pod")}


async def test_a_rollout_pass_deletes_one_pod_and_makes_its_replacement() -> None:
    world = Watched()
    await converged(world, 5)
    change_template(world)
    assert await world.reconcile() == []
    assert len(world.deleted) == 1
    images = pods(world)
    assert len(images) == 5  # the replacement exists: made in the same pass
    assert sorted(images.values()).count("new:2") == 1
    # Not Ready yet: the next pass replaces nothing more.
    assert await world.reconcile() == []
    assert len(world.deleted) == 1
    status = world.status("ShardSet", "set")
    assert status["readyShards"] == 4
    # Each replacement Ready lets the next one go, one at a time, to the end.
    for step in range(2, 6):
        world.pods_ready()
        await world.reconcile()
        assert len(world.deleted) == step
    world.pods_ready()
    assert await world.reconcile() == []
    assert set(pods(world).values()) == {"new:2"}
    assert world.condition("ShardSet", "set", "Ready")["status"] == "True"
    # Idle: nothing more is written.
    writes = len(world.kube.writes)
    assert await world.reconcile() == []
    assert len(world.kube.writes) == writes


async def test_a_budget_of_two_replaces_two_per_pass() -> None:
    world = Watched()
    await converged(world, 6, max_unavailable=2)
    change_template(world)
    await world.reconcile()
    assert len(world.deleted) == 2 and len(pods(world)) == 6


async def test_a_pod_slow_to_go_is_left_to_the_pass_its_deletion_brings(monkeypatch) -> None:
    monkeypatch.setattr(workloads, "REPLACE_WAIT_SECONDS", 0.05)
    world = Watched(delay=None)  # the deletion never reaches the cache by itself
    await converged(world, 3)
    change_template(world)
    await world.reconcile()
    assert len(world.deleted) == 1
    assert len(pods(world)) == 2  # not re-made while the cache still shows the old pod
    world.cache.remove("Pod", NS, world.deleted[0])  # the DELETED event
    await world.reconcile()
    assert len(pods(world)) == 3 and len(world.deleted) == 1


async def test_the_dry_run_is_asked_once_per_generation() -> None:
    world = Watched()
    await converged(world, 3)
    dry_runs = 0
    create = world.kube.create

    async def counting(body: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        nonlocal dry_runs
        dry_runs += dry_run
        return await create(body, dry_run=dry_run)

    world.kube.create = counting  # type: ignore[method-assign]
    change_template(world)
    for _ in range(3):
        await world.reconcile()
        world.pods_ready()
    assert len(world.deleted) == 3 and dry_runs == 1


async def test_a_cheap_pass_is_followed_without_a_pause() -> None:
    world = World()
    await converged(world, 2)
    pauses: list[float] = []
    finished = asyncio.Event()
    done = world.controller.queue.done

    def recording(key: Any, pause: float = 0.0) -> None:
        pauses.append(pause)
        finished.set()
        done(key, pause=pause)

    world.controller.queue.done = recording  # type: ignore[method-assign]
    world.controller.start(wait_for_sync=False)
    try:
        world.controller.enqueue(NS, "node-1")
        await asyncio.wait_for(finished.wait(), 5)
    finally:
        await world.controller.stop()
    assert pauses[0] == 0.0  # an idle pass of two shards costs far less than the minimum


async def test_a_rollout_pass_is_followed_without_a_pause_however_long(monkeypatch) -> None:
    from shard_operator import controller
    # Every pass counts as CPU-bound (how busy a pass of 3 shards is depends on the
    # machine's load): only the rollout may take the pause away.
    monkeypatch.setattr(controller, "pass_pause", lambda busy, elapsed, cap: 0.5)
    world = Watched()
    await converged(world, 3)
    pauses: list[float] = []
    finished = asyncio.Event()
    done = world.controller.queue.done

    def recording(key: Any, pause: float = 0.0) -> None:
        pauses.append(pause)
        finished.set()
        done(key, pause=pause)

    world.controller.queue.done = recording  # type: ignore[method-assign]
    world.controller.start(wait_for_sync=False)
    try:
        world.controller.enqueue(NS, "node-1")  # idle: paused as long as it was busy
        await asyncio.wait_for(finished.wait(), 5)
        finished.clear()
        change_template(world)
        world.controller.enqueue(NS, "node-1")  # rolling: no pause
        await asyncio.wait_for(finished.wait(), 5)
    finally:
        await world.controller.stop()
    assert pauses[:2] == [0.5, 0.0]
    assert len(world.deleted) == 1


async def test_pods_being_deleted_count_against_the_budget_before_their_events(
        monkeypatch) -> None:
    monkeypatch.setattr(workloads, "REPLACE_WAIT_SECONDS", 0.02)
    world = Watched(delay=None)  # no deletion's watch event has arrived yet
    await converged(world, 6, max_unavailable=2)
    change_template(world)
    await world.reconcile()
    assert len(world.deleted) == 2
    for _ in range(3):  # the next passes come at once (rolling: no pause)
        await world.reconcile()
    assert len(world.deleted) == 2  # never a third while two are going
