"""Leader election without a cluster: the write fence (open only on a fresh lease, closed
for good once leadership ends, refusing in ``Writes`` and in ``kube.py``), the election
settings (timings, the Lease's namespace, identity), the run flags, the Lease spec the
elector writes (UTC whatever the TZ), the elector's attempts against an in-memory Lease
(acquire, renew, wait, stop at once on another holder, release), and the watchdog."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from shard_operator import election, leader, lease, metrics
from shard_operator.cache import Cache
from shard_operator.cli import operator as operator_cli
from shard_operator.fence import FENCE, Fence, Fenced
from shard_operator.kube import Api, ApiError, Kube
from shard_operator.kubeconfig import KubeConfig, Secret, StaticAuth
from shard_operator.writes import Writes


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fence(clock: Clock) -> Fence:
    return Fence(clock)


@pytest.fixture
def armed_global() -> Iterator[Fence]:
    """The process-wide fence, armed and closed; disarmed afterwards."""
    FENCE.arm(10.0)
    yield FENCE
    FENCE.reset()


def fenced_count(kind: str, verb: str) -> float:
    return metrics.FENCED_WRITES.labels(kind, verb)._value.get()


# ----- the fence ------------------------------------------------------------------------

@pytest.mark.parametrize(("steps", "open_"), [
    ([], True),  # not armed: no election, everything goes through
    (["arm"], False),  # a standby
    (["arm", "renew"], False),  # renewed, not yet leading
    (["arm", "lead"], False),  # leading without a renewal: no lease to speak of
    (["arm", "renew", "lead"], True),
    (["arm", "renew", "lead", "+9.9"], True),
    (["arm", "renew", "lead", "+10"], False),  # the renew deadline, to the instant
    (["arm", "renew", "lead", "+11", "renew"], True),  # renewed again in time: open
    (["arm", "renew", "lead", "close"], False),
    (["arm", "renew", "lead", "close", "renew", "lead"], False),  # closed for good
], ids=lambda v: "/".join(v) if isinstance(v, list) else str(v))
def test_fence_opens_only_on_a_fresh_lease(fence: Fence, clock: Clock, steps: list[str],
                                           open_: bool) -> None:
    for step in steps:
        if step == "arm":
            fence.arm(10.0)
        elif step == "renew":
            fence.renewed(clock.now)
        elif step == "lead":
            fence.lead()
        elif step == "close":
            fence.close("test")
        else:
            clock.now += float(step)
    assert fence.is_open() is open_


def test_a_renewal_counts_from_when_it_was_sent(fence: Fence, clock: Clock) -> None:
    fence.arm(10.0)
    sent = clock.now
    clock.now += 4  # a slow answer
    fence.renewed(sent)
    fence.lead()
    clock.now = sent + 9.99
    assert fence.is_open()
    clock.now = sent + 10
    assert not fence.is_open() and fence.expired()
    assert "renew deadline" in fence.why_closed()


def test_an_older_renewal_never_moves_the_deadline_back(fence: Fence, clock: Clock) -> None:
    fence.arm(10.0)
    fence.renewed(clock.now)
    fence.renewed(clock.now - 5)
    assert fence.deadline == clock.now + 10


def test_check_raises_and_counts(fence: Fence) -> None:
    fence.arm(10.0)
    before = fenced_count("Pod", "create")
    with pytest.raises(Fenced, match="not the leader"):
        fence.check("Pod", "create")
    assert fenced_count("Pod", "create") == before + 1


def test_leader_gauge_follows_the_fence(fence: Fence, clock: Clock) -> None:
    fence.arm(10.0)
    fence.renewed(clock.now)
    fence.lead()
    assert metrics.LEADER._value.get() == 1
    fence.close("test")
    assert metrics.LEADER._value.get() == 0


async def test_wait_open_returns_when_leading(fence: Fence, clock: Clock) -> None:
    fence.arm(10.0)
    waiter = asyncio.create_task(fence.wait_open())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    fence.renewed(clock.now)
    fence.lead()
    await asyncio.wait_for(waiter, 1)
    await asyncio.wait_for(Fence().wait_open(), 1)  # unarmed: at once


# ----- nothing goes around it -------------------------------------------------------------

class NoKube:
    """A Kube whose calls must never be made."""

    def __getattr__(self, name: str):
        raise AssertionError(f"kube.{name} was called through a closed fence")


async def test_writes_send_and_refused_are_fenced(armed_global: Fence) -> None:
    writes = Writes(NoKube(), Cache())  # type: ignore[arg-type]
    called = []

    async def call():
        called.append(1)
        return None

    before = fenced_count("Pod", "create")
    with pytest.raises(Fenced):
        await writes.send("Pod", "create", "ns", call)
    with pytest.raises(Fenced):
        await writes.refused({"kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}})
    assert called == [] and fenced_count("Pod", "create") == before + 2


async def test_kube_refuses_every_verb_but_get(armed_global: Fence) -> None:
    kube = Kube(None)  # type: ignore[arg-type]  # no request may reach the client
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}}
    for attempt in (lambda: kube.create(pod), lambda: kube.create(pod, dry_run=True),
                    lambda: kube.replace(pod), lambda: kube.patch("Pod", "ns", "p", {}),
                    lambda: kube.patch_status("Shard", "ns", "s", {}),
                    lambda: kube.delete("Pod", "ns", "p"),
                    lambda: kube._open("POST", "/api/v1/namespaces/ns/pods", [])):
        with pytest.raises(Fenced):
            await attempt()
    with pytest.raises(AttributeError):  # a GET goes on to the (absent) client
        await kube.get("Pod", "ns", "p")


# ----- election settings ------------------------------------------------------------------

@pytest.mark.parametrize(("lease", "renew", "retry", "problem"), [
    (15, 10, 2, None),  # controller-runtime's defaults
    (4, 3, 1, None),
    (10, 10, 2, "--renew-deadline (10 s) must be shorter than --lease-duration"),
    (10, 12, 2, "must be shorter than --lease-duration"),
    (15, 10, 10, "--retry-period (10 s) must be shorter than --renew-deadline"),
    (15, 10, 9, "must exceed 1.2 x --retry-period"),
    (15, 10, 0.5, "at least 1 s"),
    (0, 10, 2, "at least 1 s"),
])
def test_timings(lease: float, renew: float, retry: float, problem: str | None) -> None:
    found = election.timing_error(lease, renew, retry)
    assert (found is None) if problem is None else (problem in (found or "")), found


@pytest.mark.parametrize(("flag", "watched", "env", "sa_file", "expected"), [
    (None, ["apps"], {"POD_NAMESPACE": "ops"}, None, "ops"),  # in a pod: the pod's
    (None, ["apps"], {}, "ops-sa\n", "ops-sa"),  # the service account's file
    (None, ["apps"], {"POD_NAMESPACE": "ops"}, "other", "ops"),  # downward API first
    (None, ["apps", "more"], {}, None, "apps"),  # local run: the first watched
    ("elect", ["apps"], {"POD_NAMESPACE": "ops"}, None, "elect"),  # explicit flag wins
    ("elect", [], {}, None, "elect"),
    (None, [], {}, None, None),  # local --all-namespaces without the flag
    (None, [], {"POD_NAMESPACE": "ops"}, None, "ops"),  # cluster-wide in a pod
    (None, ["apps"], {"POD_NAMESPACE": ""}, "  \n", "apps"),  # empty values are absent
])
def test_lease_namespace(flag, watched, env, sa_file, expected) -> None:
    in_pod = election.pod_namespace(env, sa_file)
    assert election.lease_namespace(flag, watched, in_pod) == expected


def test_identity_is_the_pod_or_host_and_unique() -> None:
    assert election.identity({"POD_NAME": "op-7"}, "h", "u") == "op-7_u"
    assert election.identity({}, "host", "u") == "host_u"
    assert election.identity({}, "h") != election.identity({}, "h")


def test_resolve() -> None:
    config = election.resolve(name="lease", flag_namespace=None, watched=["apps"],
                              lease_duration=15, renew_deadline=10, retry_period=2,
                              env={"POD_NAME": "op"})
    assert (config.name, config.namespace, config.lease_duration, config.renew_deadline,
            config.retry_period) == ("lease", "apps", 15, 10, 2)
    assert config.identity.startswith("op_")
    with pytest.raises(ValueError, match="--leader-election-namespace"):
        election.resolve(name="l", flag_namespace=None, watched=[], lease_duration=15,
                         renew_deadline=10, retry_period=2, env={})


@pytest.mark.parametrize(("args", "message"), [
    (["-n", "a", "--renew-deadline", "20"], "must be shorter than --lease-duration"),
    (["-n", "a", "--retry-period", "10"], "must be shorter than --renew-deadline"),
    (["-A"], "give --leader-election-namespace"),
    (["-n", "a", "--priority", "5"], "No such option"),
    (["-n", "a", "--peering", "p"], "No such option"),
])
def test_run_flags_are_validated(args: list[str], message: str,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    monkeypatch.setattr(election, "read_service_account_namespace", lambda: None)
    result = CliRunner().invoke(operator_cli.main, ["run", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_run_help_names_the_election_flags() -> None:
    text = CliRunner().invoke(operator_cli.main, ["run", "--help"]).output
    for flag in ("--leader-election / --no-leader-election", "--leader-election-namespace",
                 "--leader-election-id", "--lease-duration", "--renew-deadline",
                 "--retry-period"):
        assert flag in text
    assert "peering" not in text.lower() and "--priority" not in text


# ----- the Lease the elector writes -------------------------------------------------------

@pytest.fixture
def new_york() -> Iterator[None]:
    """A local time zone far from UTC: times taken as local would be 5 h off."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if saved is None:
        os.environ.pop("TZ")
    else:
        os.environ["TZ"] = saved
    time.tzset()


def parse(text: str) -> datetime:
    assert text.endswith("Z") and len(text.split(".")[1]) == 7  # six digits and Z
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


async def test_lease_times_are_utc_whatever_the_tz(new_york: None) -> None:
    spec = lease.spec_for("me", None, 15.0, datetime.now(UTC))
    now = datetime.now(UTC)
    assert abs((parse(spec["renewTime"]) - now).total_seconds()) < 5
    assert spec["acquireTime"] == spec["renewTime"]
    assert spec["holderIdentity"] == "me" and spec["leaseDurationSeconds"] == 15
    assert lease.micro_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == (
        "2026-01-02T03:04:05.000000Z")  # microsecond 0 keeps its fraction


def api() -> Api:
    """An Api that must never connect (its session is made at first use)."""
    return Api(KubeConfig("https://127.0.0.1:9", StaticAuth(Secret())))


class FakeLeases:
    """The elector's Kube, over one in-memory Lease with resourceVersions."""

    def __init__(self) -> None:
        self.lease: dict | None = None
        self.version = 0
        self.writes: list[str] = []
        self.fail: BaseException | None = None

    def _stored(self, body: dict) -> dict:
        self.version += 1
        stored = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}
        self.lease = stored
        return stored

    async def get(self, kind: str, namespace: str, name: str) -> dict:
        assert (kind, namespace, name) == ("Lease", "ns", "l")
        if self.fail is not None:
            raise self.fail
        if self.lease is None:
            raise ApiError(404, "NotFound", "no lease")
        return self.lease

    async def create(self, body: dict) -> dict:
        if self.lease is not None:
            raise ApiError(409, "AlreadyExists", "exists")
        self.writes.append("create")
        return self._stored(body)

    async def replace(self, body: dict) -> dict:
        assert self.lease is not None
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "modified")
        self.writes.append("replace")
        return self._stored(body)

    def other_holds(self, holder: str = "other") -> None:
        spec = lease.spec_for(holder, (self.lease or {}).get("spec"), 15, datetime.now(UTC))
        self._stored(lease.body("l", "ns", spec, self.lease))


@pytest.fixture
def elector(fence: Fence, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[tuple[leader.Leader, FakeLeases, list[str]]]:
    monkeypatch.setattr(leader, "_hard_exit", lambda: None)
    monkeypatch.setattr(leader, "HARD_EXIT_SECONDS", 0.01)
    lost: list[str] = []
    elected = leader.Leader(election.ElectionConfig("l", "ns", "me", 15, 10, 2), fence, api(),
                            on_lost=lost.append)
    fake = FakeLeases()
    elected.kube = fake  # type: ignore[assignment]
    yield elected, fake, lost


def test_the_electors_kube_is_not_fenced(armed_global: Fence) -> None:
    elected = leader.Leader(election.ElectionConfig("l", "ns", "me"), FENCE, api(),
                            on_lost=lambda why: None)
    assert elected.kube.fence is None and Kube(api()).fence is FENCE


async def test_acquire_renew_and_release(elector, fence: Fence, clock: Clock) -> None:
    elected, fake, lost = elector
    assert await elected.attempt()  # no Lease: created with us as holder
    assert fake.writes == ["create"] and fence.deadline == clock.now + 10
    await elected._started()
    assert fence.is_open()
    acquired = fake.lease["spec"]["acquireTime"]
    clock.now += 2
    assert await elected.attempt()  # renewed: same acquire time, fence pushed on
    assert fake.writes == ["create", "replace"] and fence.deadline == clock.now + 10
    assert fake.lease["spec"]["acquireTime"] == acquired
    assert fake.lease["spec"]["holderIdentity"] == "me"
    fence.close("stopping")
    assert await elected.release()  # the fence is closed; the Lease write still goes
    assert "holderIdentity" not in fake.lease["spec"]
    assert fake.lease["spec"]["leaseDurationSeconds"] == 1 and lost == []
    assert not await elected.release()  # not ours any more: nothing written
    assert fake.writes == ["create", "replace", "replace"]


async def test_a_standby_waits_for_a_valid_lease_then_takes_it_once_expired(
        elector, fence: Fence, clock: Clock) -> None:
    elected, fake, lost = elector
    fake.other_holds()
    assert not await elected.attempt() and fake.writes == []
    clock.now += 14.9  # measured from when *we* saw the spec, not its renewTime
    assert not await elected.attempt()
    clock.now += 0.1
    assert await elected.attempt()
    assert fake.lease["spec"]["holderIdentity"] == "me"
    assert fake.lease["spec"]["leaseTransitions"] == 1 and lost == []


async def test_a_renewal_by_the_holder_restarts_the_standbys_count(
        elector, clock: Clock) -> None:
    elected, fake, _ = elector
    fake.other_holds()
    assert not await elected.attempt()
    clock.now += 10
    fake.other_holds()  # renewed: a new renewTime, a new observation
    assert not await elected.attempt()
    clock.now += 10
    assert not await elected.attempt()  # 20 s since the first sight, 10 since the change
    clock.now += 5
    assert await elected.attempt()


async def test_a_released_lease_is_taken_at_once(elector) -> None:
    elected, fake, _ = elector
    fake.other_holds()
    fake._stored(lease.body("l", "ns", lease.released_spec(fake.lease["spec"],
                                                            datetime.now(UTC)), fake.lease))
    assert await elected.attempt()


async def test_a_leader_that_sees_another_holder_stops_at_once(
        elector, fence: Fence, clock: Clock) -> None:
    elected, fake, lost = elector
    assert await elected.attempt()
    await elected._started()
    fake.other_holds("usurper")  # e.g. it took the lease while we were paused
    assert not await elected.attempt()
    assert len(lost) == 1 and "'usurper'" in lost[0]
    assert not fence.is_open() and fence.ended
    assert fake.writes == ["create"]  # and wrote nothing over it


async def test_failed_attempts_do_not_renew(elector, fence: Fence, clock: Clock) -> None:
    elected, fake, lost = elector
    assert await elected.attempt()
    await elected._started()
    renewed = fence.deadline
    fake.fail = TimeoutError()
    clock.now += 2
    assert not await elected.attempt() and fence.deadline == renewed
    fake.fail = ApiError(500, "InternalError", "etcd")
    assert not await elected.attempt() and lost == []
    fake.fail = None
    fake.other_holds("me")  # our own record, rewritten: the version moved
    stale = {**fake.lease, "metadata": {**fake.lease["metadata"], "resourceVersion": "0"}}
    with pytest.raises(ApiError):
        await fake.replace(stale)  # the fake refuses a stale version as the server does
    assert await elected.attempt() and fence.deadline == clock.now + 10


async def test_the_loop_ends_leadership_when_renewals_fail_past_the_deadline(
        elector, fence: Fence, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    elected, fake, lost = elector
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds
        fake.fail = TimeoutError()  # every attempt after the first fails
    monkeypatch.setattr(leader.asyncio, "sleep", sleep)
    await asyncio.wait_for(elected._elect(), 5)
    assert lost == ["could not renew the lease within the renew deadline"]
    assert sleeps == [2.0] * 5  # leading: every retry period, no jitter
    assert not fence.is_open()


# ----- the watchdog -----------------------------------------------------------------------

async def test_watchdog_ends_leadership_when_the_deadline_passes(
        fence: Fence, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    exits = []
    monkeypatch.setattr(leader, "_hard_exit", lambda: exits.append(1))
    monkeypatch.setattr(leader, "HARD_EXIT_SECONDS", 0.01)
    config = election.ElectionConfig("l", "ns", "me", 15, 10, 2)
    lost: list[str] = []
    elected = leader.Leader(config, fence, api(), on_lost=lost.append)
    fence.renewed(clock.now)
    fence.lead()
    watchdog = asyncio.create_task(elected._watchdog())
    await asyncio.sleep(0.6)
    assert lost == [] and fence.is_open()
    clock.now += 10.5  # e.g. the elector stuck in a request, or the process stopped
    assert not fence.is_open()  # closed at the very next check, watchdog or not
    await asyncio.wait_for(watchdog, 2)
    assert len(lost) == 1 and "renew deadline passed" in lost[0]
    assert fence.ended and not fence.is_open()
    await asyncio.sleep(0.1)
    assert exits == [1]  # and the process exits (here: the stubbed hard exit)
    clock.now -= 10.5
    fence.renewed(clock.now)
    fence.lead()
    assert not fence.is_open()  # never reopens
