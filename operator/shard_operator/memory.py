"""Process-wide memory settings for the operator (``shard-operator run`` applies them).

Measured with ``SHARD_OPERATOR_TRACEMALLOC`` (see ``memprofile``) while converging
5,000 shards:

* asyncio's TLS transport gives every connection a 256 KiB receive buffer and reads
  decrypted data in 256 KiB pieces. The operator keeps about 70 TLS connections to the
  API server (its client pool of 64 and kopf's watches): 17.7 MB of buffers, the largest
  single item in the profile. A TLS record carries at most 16 KiB, so a 64 KiB buffer
  still takes four records per read.
* kopf keeps a ``ResourceMemory`` for every object it has seen until the object is
  deleted (a memo copy, an error throttler, indexing and daemon state: about 900 bytes
  traced each, so 13 MB for the 15,000 Shards, Pods and Services of 5,000 shards). The
  operator has only event handlers, which use none of it across events
  (:class:`EventOnlyMemories`).
* glibc's heap held tens of MB free but not returned (``mallinfo2().fordblks``): the
  operator allocates and frees many large buffers (TLS reads, JSON texts of events and
  answers) among long-lived small objects.
"""

from __future__ import annotations

import asyncio.sslproto
import ctypes
import ctypes.util
import logging
from typing import Any

from kopf._core.reactor.inventory import ResourceMemories  # kopf.operator(memories=) takes it

log = logging.getLogger("shard_operator")

TLS_READ_BUFFER = 64 * 1024  # asyncio's default: 256 KiB per connection

M_TRIM_THRESHOLD = -1  # glibc mallopt() parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MALLOC_THRESHOLD = 128 * 1024  # glibc's default starting value for both


def shrink_tls_buffers(size: int = TLS_READ_BUFFER) -> None:
    """Smaller receive buffers for the TLS connections opened from now on."""
    asyncio.sslproto.SSLProtocol.max_size = size


def pin_malloc_thresholds(threshold: int = MALLOC_THRESHOLD) -> bool:
    """Keep glibc's mmap and trim thresholds at ``threshold`` (False if not glibc).

    glibc raises both thresholds each time it frees a large mmapped block, after which
    blocks of that size come from the heap and their holes stay in the process; fixed
    thresholds keep large blocks in their own mappings and return free heap tops."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold)) and bool(
        mallopt(M_TRIM_THRESHOLD, threshold))


class EventOnlyMemories(ResourceMemories):
    """kopf's per-object memories, made fresh for each event and never kept.

    Passed to ``kopf.operator(memories=...)``. kopf needs a memory across events only for
    change, resume, timer, daemon and index handlers and for throttling errors raised by
    handlers; the operator registers event handlers only, and they do not raise (they
    update the cache and enqueue a node id)."""

    async def recall(self, raw_body: Any, *, memobase: Any = None,
                     noticed_by_listing: bool = False, ephemeral: bool = False) -> Any:
        return await super().recall(raw_body, memobase=memobase,
                                    noticed_by_listing=noticed_by_listing, ephemeral=True)


def apply() -> None:
    shrink_tls_buffers()
    if not pin_malloc_thresholds():
        log.debug("mallopt unavailable: malloc thresholds left as they are")
