"""Which pods a rollout replaces, and when it waits: table tests of the pure policy."""

from __future__ import annotations

import pytest

from shard_operator.rollout import (
    ON_DELETE,
    ShardPod,
    StrategyError,
    UpdateStrategy,
    status,
    to_replace,
)


def pods(spec: str) -> list[ShardPod]:
    """One letter per shard, named s0, s1, ...: ``O`` outdated and Ready, ``o`` outdated
    and not Ready, ``U`` updated and Ready, ``u`` updated and not Ready, ``-`` no pod."""
    table = {"O": (True, True, True), "o": (True, False, True), "U": (True, True, False),
             "u": (True, False, False), "-": (False, False, False)}
    return [ShardPod(f"s{i}", *table[c]) for i, c in enumerate(spec)]


ROLLING_1 = UpdateStrategy()


@pytest.mark.parametrize(("spec", "strategy", "replaced"), [
    ("OOOO", ROLLING_1, ["s0"]),                              # one at a time
    ("uOOO", ROLLING_1, []),                                  # waits for the replacement
    ("UOOO", ROLLING_1, ["s1"]),                              # the next once it is Ready
    ("-OOO", ROLLING_1, []),                                  # a shard already down counts
    ("oOOO", ROLLING_1, ["s0"]),                              # down and outdated: free
    ("oOoO", ROLLING_1, ["s0", "s2"]),                        # ... however many
    ("UUUU", ROLLING_1, []),                                  # done
    ("OOOO", UpdateStrategy(max_unavailable=2), ["s0", "s1"]),
    ("uOOO", UpdateStrategy(max_unavailable=2), ["s1"]),
    ("OOOOOOOOOO", UpdateStrategy(max_unavailable="10%"), ["s0"]),
    ("OOOOOOOOOO", UpdateStrategy(max_unavailable="25%"), ["s0", "s1", "s2"]),  # rounds up
    ("OOOOOOOOOO", UpdateStrategy(max_unavailable="1%"), ["s0"]),   # never 0
    ("OOOO", UpdateStrategy(max_unavailable="100%"), ["s0", "s1", "s2", "s3"]),
    ("OOOO", UpdateStrategy(partition="s2"), ["s2"]),         # canary: s2 and after
    ("OOUU", UpdateStrategy(partition="s2"), []),             # partition done
    ("OOOO", UpdateStrategy(type=ON_DELETE), []),             # never by the operator
])
def test_to_replace(spec: str, strategy: UpdateStrategy, replaced: list[str]) -> None:
    assert to_replace(pods(spec), strategy) == replaced


def test_a_replacement_that_never_gets_ready_stops_the_rollout() -> None:
    stuck = pods("uOOOOO")  # s0's replacement does not become Ready
    for _ in range(5):
        assert to_replace(stuck, ROLLING_1) == []
    assert not status(stuck, ROLLING_1).complete


@pytest.mark.parametrize(("spec", "strategy", "expected"), [
    ("OOOO", ROLLING_1, (4, 0, 4, 0, 4, False)),
    ("UuOO", ROLLING_1, (4, 2, 3, 1, 2, False)),
    ("UUUU", ROLLING_1, (4, 4, 4, 4, 0, True)),
    ("OOUU", UpdateStrategy(partition="s2"), (4, 2, 4, 2, 0, True)),
    ("OOOO", UpdateStrategy(type=ON_DELETE), (4, 0, 4, 0, 0, True)),
])
def test_status(spec: str, strategy: UpdateStrategy, expected: tuple) -> None:
    s = status(pods(spec), strategy)
    assert (s.desired, s.updated, s.ready, s.updated_ready, s.pending, s.complete) == expected


@pytest.mark.parametrize(("spec", "message"), [
    ({"type": "Recreate"}, "spec.updateStrategy.type"),
    ({"rollingUpdate": {"maxUnavailable": 0}}, "below 1"),
    ({"rollingUpdate": {"maxUnavailable": "0%"}}, "percentage"),
    ({"rollingUpdate": {"maxUnavailable": "150%"}}, "percentage"),
    ({"rollingUpdate": {"maxUnavailable": "ten"}}, "percentage"),
    ({"rollingUpdate": {"maxUnavailable": True}}, "integer or a percentage"),
])
def test_bad_strategies_name_the_field(spec: dict, message: str) -> None:
    with pytest.raises(StrategyError, match=message):
        UpdateStrategy.parse(spec)


def test_defaults() -> None:
    assert UpdateStrategy.parse(None) == UpdateStrategy("RollingUpdate", 1, "")
    parsed = UpdateStrategy.parse({"rollingUpdate": {"maxUnavailable": "10%",
                                                     "partition": "node-1-m"}})
    assert parsed.budget(1000) == 100 and parsed.in_partition("node-1-z")
    assert not parsed.in_partition("node-1-a")
