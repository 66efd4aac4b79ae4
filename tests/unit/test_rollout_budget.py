"""A rollout's budget on an in-memory API server: a pod the operator deleted counts as
going from the moment its delete succeeds, not only once its watch event arrives."""

from __future__ import annotations

from tests.unit.fakekube import Watched, change_template, converged


async def test_pods_being_deleted_count_against_the_budget_before_their_events() -> None:
    world = Watched(delay=None)  # no deletion's watch event has arrived yet
    await converged(world, 6, max_unavailable=2)
    change_template(world)
    await world.reconcile()
    assert len(world.deleted) == 2
    for _ in range(3):  # passes that come before any deletion's watch event
        await world.reconcile()
    # The two are known to be going: neither deleted again (the cache used to show them
    # Ready until their events came, so each pass sent their deletes once more), nor a
    # third one taken down in their place.
    assert len(world.deleted) == 2 and len(set(world.deleted)) == 2
