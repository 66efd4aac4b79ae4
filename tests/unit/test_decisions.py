"""Table-driven tests of the controller's pure decisions (:mod:`shard_operator.decisions`):
which pods to roll, what fits in the key map, what status to write, which event to post,
which Shards are supervised, what drifted, and the work queue's backoff."""

from __future__ import annotations

from typing import Any

import pytest

from shard_operator import conditions, decisions, keymap
from shard_operator.cache import PodView, ServiceView, ShardSetView, ShardView
from shard_operator.decisions import Pass, ShardOutcome
from shard_operator.failing import CRASH_RESTARTS
from shard_operator.keys import shard_name
from shard_operator.rollout import UpdateStrategy
from shard_operator.workqueue import WorkQueue, backoff

NOW = 1_800_000_000.0


def pod(name: str, *, ready: bool = True, restarts: int = 0, waiting: str = "",
        last_failure: float | None = None) -> PodView:
    return PodView(name=name, uid=f"uid-{name}", labels={}, annotations={}, owners=(),
                   phase="Running" if ready else "Pending", ready=ready, restarts=restarts,
                   waiting_reason=waiting, deleting=False, last_failure=last_failure)


def service(name: str) -> ServiceView:
    return ServiceView(name=name, uid=f"svc-{name}", labels={}, annotations={}, owners=(),
                       selector={}, ports=[], deleting=False)


def shard(key: str, *, node: str = "node-1", name: str | None = None,
          created: str = "2026-01-01T00:00:00Z", decodable: bool = True) -> ShardView:
    canonical = (key.encode(),)
    return ShardView(name=name or shard_name(node, canonical), uid=f"uid-{key}", generation=1,
                     created=created, node_id=node, key=canonical if decodable else None,
                     origin="schema", owners=("set-uid",), body={}, status={}, deleting=False)


def owner(policy: str = "Retain") -> ShardSetView:
    return ShardSetView.of({
        "metadata": {"name": "set", "namespace": "ns", "uid": "set-uid", "generation": 3},
        "spec": {"nodeId": "node-1", "removedKeyPolicy": policy, "schema": []}})


def outcome(*, ready: bool | None = True, outdated: bool = False) -> ShardOutcome:
    """``ready`` None: no Pod."""
    return ShardOutcome(pod=None if ready is None else pod("p", ready=ready),
                        service=service("s"), outdated=outdated)


# ----- which pods to roll ------------------------------------------------------------------

ONE = UpdateStrategy()
TWO = UpdateStrategy(max_unavailable=2)


@pytest.mark.parametrize(("outcomes", "strategy", "rolled"), [
    ({}, ONE, []),
    ({"a": outcome(), "b": outcome()}, ONE, []),  # nothing outdated
    # maxUnavailable 1 (the default): one at a time
    ({**{f"o{i}": outcome(outdated=True) for i in range(4)},
      **{f"u{i}": outcome() for i in range(4)}}, ONE, ["o0"]),
    ({**{f"o{i}": outcome(outdated=True) for i in range(4)},
      **{f"u{i}": outcome() for i in range(4)}}, TWO, ["o0", "o1"]),
    # one already down counts against the budget
    ({**{f"o{i}": outcome(outdated=True) for i in range(4)},
      "down": outcome(ready=None), **{f"u{i}": outcome() for i in range(3)}}, TWO, ["o0"]),
    ({**{f"o{i}": outcome(outdated=True) for i in range(4)},
      "down": outcome(ready=None), **{f"u{i}": outcome() for i in range(3)}}, ONE, []),
    # not-ready outdated pods go first (they cost no availability)
    ({"r": outcome(outdated=True), "n": outcome(ready=False, outdated=True),
      **{f"u{i}": outcome() for i in range(6)}}, ONE, ["n"]),
    # the budget is spent already: none
    ({"o": outcome(outdated=True), "d1": outcome(ready=None), "d2": outcome(ready=False),
      **{f"u{i}": outcome() for i in range(5)}}, TWO, []),
    # OnDelete: never
    ({"a": outcome(outdated=True), "b": outcome()}, UpdateStrategy(type="OnDelete"), []),
], ids=["empty", "current", "one-at-a-time", "two-at-a-time", "down-counts",
        "down-spends-all", "not-ready-first", "no-budget", "on-delete"])
def test_pods_to_roll(outcomes: dict[str, ShardOutcome], strategy: UpdateStrategy,
                      rolled: list[str]) -> None:
    assert decisions.pods_to_roll(outcomes, strategy) == rolled


# ----- what fits in the key map ------------------------------------------------------------

def test_plan_key_map_lists_shards_with_workloads_oldest_first_while_they_fit() -> None:
    a = shard("a", created="2026-01-01T00:00:00Z")
    b = shard("b", created="2026-01-03T00:00:00Z")
    c = shard("c", created="2026-01-02T00:00:00Z")
    bad = shard("x", decodable=False)
    waiting = shard("w")
    outcomes = {s.name: outcome() for s in (a, b, c)}
    outcomes[waiting.name] = ShardOutcome(pod=pod("w"), error="creating Service w was refused")
    header = keymap.data_size(keymap.render("node-1", "ns", {}))
    room = header + keymap.entry_size(a.name, a.key) + keymap.entry_size(c.name, c.key)
    plan = decisions.plan_key_map("node-1", "ns", [b, a, c, bad, waiting], outcomes,
                                  max_bytes=room)
    assert list(plan.entries) == [a.name, c.name]  # b is the newest: it does not fit
    assert plan.unregistered == {
        b.name: ("KeyMapFull", "the key map shard-key-map-node-1 would exceed "
                               f"{room} bytes"),
        bad.name: ("InvalidKey", "the key cannot be decoded"),
        waiting.name: ("WorkloadMissing", "creating Service w was refused"),
    }
    assert keymap.parse(plan.data).shards == {a.key: a.name, c.key: c.name}


@pytest.mark.parametrize(("listed", "still"), [
    ({}, set()),
    ({"A": '["a"]'}, {"A"}),
    ({"A": '["other"]'}, set()),  # listed under another key: not this entry
])
def test_still_listed_after_a_failed_write(listed: dict[str, str], still: set[str]) -> None:
    plan = decisions.KeyMapPlan(entries={"A": (b"a",), "B": (b"b",)}, unregistered={},
                                data={"A": '["a"]', "B": '["b"]'})
    assert decisions.still_listed(plan, listed) == still


@pytest.mark.parametrize(("due", "first", "now", "wait"), [
    (0, None, 5.0, None),  # nothing due: no slice
    (0, 4.0, 5.0, None),
    (1, 5.0, 5.0, 1.0),  # the first just became due: wait the full second
    (10, 5.0, 5.4, 0.6),
    (10, 5.0, 6.0, 0.0),  # it has waited a second: write now
    (10, 5.0, 9.0, 0.0),  # (late: at once)
    (499, 5.0, 5.1, 0.9),
    (500, 5.0, 5.1, 0.0),  # enough entries due: write now
])
def test_slice_wait(due: int, first: float | None, now: float, wait: float | None) -> None:
    got = decisions.slice_wait(due, first, now, entries=500, seconds=1.0)
    assert got == (None if wait is None else pytest.approx(wait))


A_KEY, B_KEY, C_KEY = (b"a",), (b"b",), (b"c",)


def _size(entries: dict[str, tuple[bytes, ...]]) -> int:
    return keymap.data_size(keymap.render("node-1", "ns", entries))


@pytest.mark.parametrize(("listed", "due", "max_bytes", "expected"), [
    # an empty map (none yet): the header and the due entries
    ({}, [("A", A_KEY)], 10_000, {"A": A_KEY}),
    # what is listed stays as it is, the due entries are added
    ({"A": A_KEY}, [("B", B_KEY), ("C", C_KEY)], 10_000, {"A": A_KEY, "B": B_KEY, "C": C_KEY}),
    # nothing new: no slice to write
    ({"A": A_KEY}, [("A", A_KEY)], 10_000, None),
    ({"A": A_KEY}, [], 10_000, None),
    # while it fits, in the order given; the rest waits for the pass's own write
    ({"A": A_KEY}, [("B", B_KEY), ("C", C_KEY)], _size({"A": A_KEY, "B": B_KEY}),
     {"A": A_KEY, "B": B_KEY}),
    ({"A": A_KEY}, [("B", B_KEY)], _size({"A": A_KEY}), None),
])
def test_key_map_slice(listed: dict[str, tuple[bytes, ...]], due: list[tuple[str, tuple]],
                       max_bytes: int, expected: dict[str, tuple[bytes, ...]] | None) -> None:
    current = keymap.render("node-1", "ns", listed) if listed else {}
    data = decisions.key_map_slice(current, due, "node-1", "ns", max_bytes=max_bytes)
    if expected is None:
        assert data is None
    else:
        assert data == keymap.render("node-1", "ns", expected)
        assert keymap.data_size(data) <= max_bytes


@pytest.mark.parametrize(("busy", "elapsed", "pause"), [
    (0.0, 0.0, 0.0),
    (0.2, 0.3, 0.1),  # 0.2 s of CPU, 0.1 s waited: 0.1 s beyond it
    (1.0, 1.0, 1.0),  # all CPU (a pass over a big cache, nothing to write)
    (3.0, 20.0, 0.0),  # mostly waiting on the API server: the watches kept up
    (10.0, 10.0, 5.0),  # capped
    (2.0, 1.5, 2.0),  # CPU time beyond the wall time (other threads): no negative wait
])
def test_pass_pause(busy: float, elapsed: float, pause: float) -> None:
    assert decisions.pass_pause(busy, elapsed, 5.0) == pytest.approx(pause)


# ----- what status to write ----------------------------------------------------------------

def shardset(run: Pass, shards: list[ShardView], now: float = NOW) -> dict[str, Any]:
    return decisions.shardset_status(owner(), shards, run, now)


def conds(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def pass_with(shards: list[ShardView], *, ready: int, registered: int, **extra: Any) -> Pass:
    run = Pass(**extra)
    for index, s in enumerate(shards):
        run.outcomes[s.name] = ShardOutcome(pod=pod(s.name, ready=index < ready),
                                            service=service(s.name))
        if index < registered:
            run.registered.add(s.name)
    return run


TWO = [shard("a"), shard("b")]


def kstatus_of(status: dict[str, Any]) -> str:
    """What kstatus makes of these conditions (its generic rule, in its order)."""
    for c in status["conditions"]:
        if c["type"] == "Reconciling" and c["status"] == "True":
            return "InProgress"
        if c["type"] == "Stalled" and c["status"] == "True":
            return "Failed"
    return "Current"


def refused_template(run: Pass) -> Pass:
    run.template_refused.append("the new pod template is refused: spec.x: Invalid")
    return run


@pytest.mark.parametrize(("run", "expected", "kstatus"), [
    (pass_with(TWO, ready=2, registered=2),
     {"Ready": ("True", "AllShardsReady"), "Reconciling": ("False", "Converged"),
      "Stalled": ("False", "Converged"), "Degraded": ("False", "Healthy")}, "Current"),
    (pass_with(TWO, ready=1, registered=2),
     {"Ready": ("False", "Progressing"), "Reconciling": ("True", "Progressing"),
      "Stalled": ("False", "Progressing"), "Degraded": ("False", "Healthy")}, "InProgress"),
    # every pod Ready, one not registered yet: not converged
    (pass_with(TWO, ready=2, registered=1),
     {"Ready": ("False", "Progressing"), "Reconciling": ("True", "Progressing"),
      "Stalled": ("False", "Progressing"), "Degraded": ("False", "Healthy")}, "InProgress"),
    # an invalid generation over running shards: stalled until the spec changes
    (pass_with(TWO, ready=2, registered=2, problems=["spec.schema[1]: bad"]),
     {"Ready": ("False", "InvalidSchema"), "Reconciling": ("False", "InvalidSchema"),
      "Stalled": ("True", "InvalidSchema"), "Degraded": ("True", "InvalidSchema")}, "Failed"),
    # ... also while the shards of the last good generation still come up
    (pass_with(TWO, ready=0, registered=0, problems=["spec.schema[1]: bad"]),
     {"Ready": ("False", "InvalidSchema"), "Reconciling": ("False", "InvalidSchema"),
      "Stalled": ("True", "InvalidSchema"), "Degraded": ("True", "InvalidSchema")}, "Failed"),
    # a failed write while shards are still coming up: retried, so reconciling
    (pass_with(TWO, ready=1, registered=1, errors=["creating Pod b was refused: quota"]),
     {"Ready": ("False", "ReconcileError"), "Reconciling": ("True", "Progressing"),
      "Stalled": ("False", "Progressing"), "Degraded": ("True", "ReconcileError")},
     "InProgress"),
    # the API server refuses the template's pods: only a spec change helps
    (refused_template(pass_with(TWO, ready=0, registered=0)),
     {"Ready": ("False", "TemplateRefused"), "Reconciling": ("False", "TemplateRefused"),
      "Stalled": ("True", "TemplateRefused"), "Degraded": ("True", "TemplateRefused")},
     "Failed"),
    # a key that does not fit in the key map
    (pass_with(TWO, ready=2, registered=1,
               unregistered_reason={TWO[1].name: ("KeyMapFull", "full")}),
     {"Ready": ("False", "KeyMapFull"), "Reconciling": ("False", "KeyMapFull"),
      "Stalled": ("True", "KeyMapFull"), "Degraded": ("True", "KeyMapFull")}, "Failed"),
], ids=["converged", "pod-not-ready", "not-registered", "invalid-schema",
        "invalid-schema-while-coming-up", "write-failed", "template-refused", "key-map-full"])
def test_shardset_status(run: Pass, expected: dict[str, tuple[str, str]], kstatus: str
                         ) -> None:
    status = shardset(run, TWO)
    assert conds(status) == expected
    assert kstatus_of(status) == kstatus
    assert (status["desiredShards"], status["observedGeneration"]) == (2, 3)
    stalled = conditions.find(status["conditions"], "Stalled")
    assert stalled is not None and stalled["message"]


@pytest.mark.parametrize(("pods", "degraded"), [
    ([pod("a"), pod("b")], ("False", "Healthy")),
    ([pod("a", ready=False, waiting="CrashLoopBackOff", restarts=1), pod("b")],
     ("True", "CrashLoopBackOff")),
    # running again after repeated failures, the last one recent: still failing (no flap)
    ([pod("a", restarts=CRASH_RESTARTS, last_failure=NOW - 10), pod("b")],
     ("True", "CrashLoopBackOff")),
    # ... and stable long enough: cleared
    ([pod("a", restarts=CRASH_RESTARTS, last_failure=NOW - 3600), pod("b")],
     ("False", "Healthy")),
], ids=["healthy", "crash-loop", "recent-failure", "stable-again"])
def test_degraded_follows_failing_not_the_instant_state(pods: list[PodView],
                                                        degraded: tuple[str, str]) -> None:
    run = Pass(outcomes={s.name: ShardOutcome(pod=p, service=service(s.name))
                         for s, p in zip(TWO, pods, strict=True)},
               registered={s.name for s in TWO})
    assert conds(shardset(run, TWO))["Degraded"] == degraded


def test_key_map_full_degrades_and_invalid_schema_lists_entries() -> None:
    run = pass_with(TWO, ready=2, registered=1,
                    unregistered_reason={TWO[1].name: ("KeyMapFull", "full")},
                    problems=[f"spec.schema[{i}]: bad" for i in range(25)])
    status = shardset(run, TWO)
    assert conds(status)["Degraded"] == ("True", "InvalidSchema")
    message = conditions.find(status["conditions"], "Degraded")["message"]  # type: ignore[index]
    assert "spec.schema[19]" in message and "spec.schema[20]" not in message
    assert message.endswith("; and 5 more")
    assert decisions.degraded_reasons(run, {}, NOW)[1][0] == "KeyMapFull"


@pytest.mark.parametrize(("unregistered", "ready", "outdated", "expected", "kstatus"), [
    ({}, True, False,
     {"Ready": ("True", "PodReady"), "Registered": ("True", "Registered"),
      "Reconciling": ("False", "PodReady"), "Stalled": ("False", "PodReady")}, "Current"),
    # the Pod is Ready, the key not listed yet: the Shard is not Ready
    ({"x": ("KeyMapPending", "retried")}, True, False,
     {"Ready": ("False", "KeyMapPending"), "Registered": ("False", "KeyMapPending"),
      "Reconciling": ("True", "KeyMapPending"), "Stalled": ("False", "KeyMapPending")},
     "InProgress"),
    ({"x": ("WorkloadMissing", "waiting")}, None, False,
     {"Ready": ("False", "PodMissing"), "Registered": ("False", "WorkloadMissing"),
      "Reconciling": ("True", "PodMissing"), "Stalled": ("False", "PodMissing")},
     "InProgress"),
    ({}, False, False,
     {"Ready": ("False", "PodNotReady"), "Registered": ("True", "Registered"),
      "Reconciling": ("True", "PodNotReady"), "Stalled": ("False", "PodNotReady")},
     "InProgress"),
    # on an older template the rollout will replace
    ({}, True, True,
     {"Ready": ("False", "RollingUpdate"), "Registered": ("True", "Registered"),
      "Reconciling": ("True", "RollingUpdate"), "Stalled": ("False", "RollingUpdate")},
     "InProgress"),
    # a key that does not fit: stalled, with the registration's reason
    ({"x": ("KeyMapFull", "too big")}, True, False,
     {"Ready": ("False", "KeyMapFull"), "Registered": ("False", "KeyMapFull"),
      "Reconciling": ("False", "KeyMapFull"), "Stalled": ("True", "KeyMapFull")}, "Failed"),
], ids=["registered", "pending", "no-pod", "not-ready", "outdated", "key-map-full"])
def test_shard_status(unregistered: dict[str, tuple[str, str]], ready: bool | None,
                      outdated: bool, expected: dict[str, tuple[str, str]], kstatus: str
                      ) -> None:
    s = shard("a", name="x")
    run = Pass(outcomes={"x": outcome(ready=ready)}, unregistered_reason=unregistered,
               registered=set() if unregistered else {"x"})
    run.outcomes["x"].outdated = outdated
    status = decisions.shard_status(s, run, "ns")
    assert conds(status) == expected
    assert kstatus_of(status) == kstatus
    assert status["service"] == "x.ns.svc:8080"
    assert status["ready"] is bool(ready)  # the Pod's readiness, as the printer column


def test_shard_status_outdated_but_kept_by_the_strategy_is_ready() -> None:
    s = shard("a", name="x")
    run = Pass(outcomes={"x": outcome(ready=True)}, registered={"x"},
               strategy=UpdateStrategy(type="OnDelete"))
    run.outcomes["x"].outdated = True
    assert conds(decisions.shard_status(s, run, "ns"))["Ready"] == ("True", "PodReady")
    run.strategy = UpdateStrategy(partition="y")  # "x" sorts before the partition
    assert conds(decisions.shard_status(s, run, "ns"))["Ready"] == ("True", "PodReady")


def test_shard_refused_by_the_api_server_is_stalled() -> None:
    s = shard("a", name="x")
    run = Pass(outcomes={"x": ShardOutcome(error="creating Pod x was refused: bad",
                                           stalled=("TemplateRefused", "bad"))},
               unregistered_reason={"x": ("WorkloadMissing", "waiting")})
    status = decisions.shard_status(s, run, "ns")
    assert conds(status)["Stalled"] == ("True", "TemplateRefused")
    assert kstatus_of(status) == "Failed"


@pytest.mark.parametrize(("before", "after", "event"), [
    (None, [("Ready", "False", "Progressing"), ("Degraded", "False", "Healthy")],
     ("Normal", "Progressing")),
    ([("Ready", "False", "Progressing")], [("Ready", "True", "AllShardsReady")],
     ("Normal", "AllShardsReady")),
    ([("Ready", "True", "AllShardsReady"), ("Degraded", "False", "Healthy")],
     [("Ready", "False", "CrashLoopBackOff"), ("Degraded", "True", "CrashLoopBackOff")],
     ("Warning", "CrashLoopBackOff")),
    ([("Ready", "True", "AllShardsReady")], [("Ready", "True", "AllShardsReady")], None),
    ([("Ready", "False", "Progressing")], [("Ready", "False", "InvalidSchema")],
     ("Warning", "InvalidSchema")),
], ids=["first", "ready", "new-failure", "unchanged", "not-ready-reason"])
def test_status_event(before, after, event) -> None:
    def as_conditions(rows):
        return None if rows is None else [
            {"type": t, "status": s, "reason": r, "message": "m"} for t, s, r in rows]
    found = decisions.status_event(as_conditions(before), as_conditions(after))
    assert (found[:2] if found else None) == event


@pytest.mark.parametrize(("current", "desired", "differs"), [
    ({"a": 1, "conditions": [{"type": "Ready", "status": "True",
                              "lastTransitionTime": "t1"}]},
     {"a": 1, "conditions": [{"type": "Ready", "status": "True"}]}, False),
    ({"a": 1}, {"a": 2}, True),
    ({"conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "False"}]},
     {"conditions": [{"type": "B", "status": "False"}, {"type": "A", "status": "True"}]},
     False),
], ids=["timestamps-ignored", "value", "order-ignored"])
def test_status_differs(current, desired, differs) -> None:
    assert decisions.status_differs(current, desired) is differs


# ----- which Shards are supervised, what drifted -------------------------------------------

def test_split_refused_and_refused_status() -> None:
    good, hand_made, undecodable = shard("a"), shard("h", name="by-hand"), shard(
        "x", name="x", decodable=False)
    ok, refused = decisions.split_refused([good, hand_made, undecodable])
    assert ok == [good] and refused == [hand_made, undecodable]
    assert conds(decisions.refused_status(hand_made))["Registered"] == (
        "False", "NameNotDerived")
    assert conds(decisions.refused_status(hand_made))["Stalled"] == ("True", "NameNotDerived")
    assert kstatus_of(decisions.refused_status(hand_made)) == "Failed"
    assert conds(decisions.refused_status(undecodable))["Registered"] == (
        "False", "InvalidKey")


@pytest.mark.parametrize(("policy", "origin", "listed", "stale"), [
    ("Retain", "schema", False, False),
    ("Delete", "schema", False, True),
    ("Delete", "schema", True, False),
    ("Delete", "started", False, False),  # a started shard is never deleted by the policy
])
def test_stale_shards(policy: str, origin: str, listed: bool, stale: bool) -> None:
    s = shard("a")
    s.origin = origin
    wanted = [s.name] if listed else []
    assert decisions.stale_shards(owner(policy), [s], wanted) == ([s] if stale else [])


def test_service_patch_restores_what_drifted_only() -> None:
    desired = {"metadata": {"labels": {"app.kubernetes.io/managed-by": "shard-operator",
                                       "other": "x"},
                            "annotations": {"shards.anoma.net/key": '["a"]'},
                            "ownerReferences": [{"uid": "shard-uid"}]},
               "spec": {"selector": {"s": "1"},
                        "ports": [{"port": 8080, "targetPort": 8080}]}}
    current = ServiceView(name="x", uid="u", labels={"app.kubernetes.io/managed-by":
                                                    "shard-operator"},
                          annotations={"shards.anoma.net/key": '["a"]'}, owners=("shard-uid",),
                          selector={"s": "1"}, ports=[{"port": 8080, "targetPort": "shard"}],
                          deleting=False)
    assert decisions.service_patch(current, desired, "shard-uid") == {}
    current.selector, current.owners = {"s": "2"}, ()
    assert decisions.service_patch(current, desired, "shard-uid") == {
        "metadata": {"ownerReferences": [{"uid": "shard-uid"}]},
        "spec": {"selector": {"s": "1"}, "ports": desired["spec"]["ports"]}}
    # A label added to the selector is removed (null), not merged over.
    current.selector, current.owners = {"s": "1", "extra": "x"}, ("shard-uid",)
    assert decisions.service_patch(current, desired, "shard-uid") == {
        "spec": {"selector": {"s": "1", "extra": None}, "ports": desired["spec"]["ports"]}}


@pytest.mark.parametrize(("failures", "seconds"), [(1, 1.0), (2, 2.0), (5, 16.0), (6, 30.0),
                                                   (60, 30.0)])
def test_requeue_backoff(failures: int, seconds: float) -> None:
    assert backoff(failures) == seconds


async def test_rate_limited_requeue_backs_off_until_forgotten() -> None:
    queue = WorkQueue()
    key = ("ns", "node-1")
    assert [queue.add_rate_limited(key) for _ in range(3)] == [1.0, 2.0, 4.0]
    assert queue.failures(key) == 3
    queue.forget(key)
    assert queue.failures(key) == 0 and queue.add_rate_limited(key) == 1.0


def test_shardset_status_during_a_rollout_is_not_converged() -> None:
    """Every pod Ready and registered, but one still on the old template: not Ready, and
    Progressing says so; updatedShards counts the pods on the current template."""
    run = pass_with(TWO, ready=2, registered=2)
    run.outcomes[TWO[1].name].outdated = True
    status = shardset(run, TWO)
    assert conds(status)["Ready"] == ("False", "RollingUpdate")
    assert conds(status)["Reconciling"] == ("True", "RollingUpdate")
    assert kstatus_of(status) == "InProgress"
    assert status["updatedShards"] == 1
    assert status["storage"].startswith("emptyDir")
    # OnDelete: an outdated pod is left alone, and the ShardSet converges
    run.strategy = UpdateStrategy(type="OnDelete")
    assert conds(shardset(run, TWO))["Ready"] == ("True", "AllShardsReady")
    # the replacement made, not Ready yet
    run.outcomes[TWO[1].name] = ShardOutcome(pod=pod(TWO[1].name, ready=False),
                                             service=service(TWO[1].name))
    assert conds(shardset(run, TWO))["Reconciling"] == ("True", "Progressing")


def test_an_invalid_generation_over_outdated_pods_is_not_a_rollout() -> None:
    run = pass_with(TWO, ready=2, registered=2, problems=["spec.x: bad"])
    run.outcomes[TWO[1].name].outdated = True
    status = shardset(run, TWO)
    assert conds(status)["Ready"] == ("False", "InvalidSchema")
    assert conds(status)["Stalled"] == ("True", "InvalidSchema")
    assert kstatus_of(status) == "Failed"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert "spec.x: bad" in ready["message"]


def test_a_duplicate_shardset_is_stalled() -> None:
    status, message = decisions.duplicate_status(owner(), owner())
    assert conds(status)["Stalled"] == ("True", "NodeIdConflict")
    assert conds(status)["Reconciling"] == ("False", "NodeIdConflict")
    assert kstatus_of(status) == "Failed" and "already used" in message
