"""The corpus reuses the shard server fixtures (real processes on 127.0.0.1) and the
operator fixtures (CRDs, kubectl helper)."""

from tests.operator.conftest import crds, kubectl  # noqa: F401
from tests.server.conftest import module_servers, servers  # noqa: F401
