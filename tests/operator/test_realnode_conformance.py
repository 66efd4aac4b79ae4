"""The original's shard conformance cases against pods the operator made on the real
node, with the default image and its real probes, over ``kubectl port-forward``.

The cases are the very functions of ``tests/server/test_server_conformance.py``; only
the ``shards`` fixture differs: here each shard is a Pod scheduled on the real node
through the ShardSet template's node selector and toleration.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localcluster import LocalCluster
from tests.operator.conftest import CONFORMANCE_SCHEMA, Kubectl, shardset, wait_ready
from tests.operator.realnode import (
    REAL_NODE_TEMPLATE,
    PodShard,
    require_real_node,
    shard_pods,
)
from tests.server.test_server_conformance import (  # noqa: F401 (collected here)
    client,
    test_queued_reads_and_reservation,
    test_read_blocks_until_the_watermark_advances,
    test_reserving_twice_is_occupied,
    test_start_values,
    test_unreserve_empties_and_releases_a_blocked_read,
    test_write_below_the_watermark_applies_and_backup,
)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def shards(cluster: LocalCluster, operator, kubectl: Kubectl, namespace: str
           ) -> Iterator[dict[str, PodShard]]:
    node = require_real_node(cluster)
    kubectl.apply(shardset("conf", "conf", CONFORMANCE_SCHEMA, template=REAL_NODE_TEMPLATE))
    wait_ready(kubectl, "conf", 3, timeout=180)
    pods = shard_pods(cluster, namespace)
    made = {f"shard-{key}": PodShard(cluster, namespace, pods[f'["{key}"]'])
            for key in ("a", "b", "c")}
    for shard in made.values():
        assert shard.pod_json()["spec"]["nodeName"] == node
        assert shard.container_status()["ready"] is True
    yield made
    for shard in made.values():
        shard.close()
