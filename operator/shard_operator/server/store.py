"""Durable storage of the shard state in ``SHARD_DATA_DIR``, and group commit.

Two files:

- ``shard-state.v1``, a snapshot of the whole state, replaced atomically (temporary file,
  fsync, ``os.replace``, fsync of the directory), so a crash at any instant leaves either
  the old or the new complete file. It starts with a header line::

      SHARD-STATE v1 sha256=<hex digest of the payload> length=<payload bytes>

  followed by the JSON payload. On load, a wrong length (truncation, trailing bytes) or a
  wrong digest (corruption) raises :class:`CorruptStateError`; the server then refuses to
  start rather than serve wrong or empty state.
- ``shard-journal.v1``, the changes accepted since that snapshot, one checksummed record
  per line (:mod:`.journal`), appended and fsynced before any answer that depends on them.

A commit appends the new records (cost: the size of the change, not of the state). When
the journal outgrows the snapshot, a commit writes a new snapshot instead and empties the
journal (a *checkpoint*), so start-up replays at most about one snapshot's worth of
records. Records at or below the snapshot's version (left by a crash between a checkpoint
and the journal's truncation) are skipped on replay.

:class:`GroupCommitter` batches concurrent changes: each change waits until a commit that
includes it is durable; one append (one fsync) covers every change made before it began.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .journal import JOURNAL_FILE_NAME, JournalContents, JournalCorrupt, decode_journal

log = logging.getLogger(__name__)

STATE_FILE_NAME = "shard-state.v1"
LOCK_FILE_NAME = ".shard-state.lock"
CHECKPOINT_MIN_JOURNAL_BYTES = 1 << 20
"""A checkpoint happens once the journal is larger than this and than the snapshot."""
_HEADER_RE = re.compile(rb"SHARD-STATE v1 sha256=([0-9a-f]{64}) length=([0-9]{1,15})")


JOURNAL_PREALLOCATE_BYTES = 256 * 1024
"""The journal grows by at least this many zeros at a time (see :meth:`StateStore.append`)."""


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


class StateError(Exception):
    """The state on disk cannot be used; the server must not start."""


class CorruptStateError(StateError):
    """The state file is truncated, corrupted or not a state file."""


class StateLockedError(StateError):
    """Another process holds the data directory."""


class PersistenceFailed(Exception):
    """A commit failed: the in-memory state is ahead of the disk and must not be served."""


def encode_state_file(payload: Any) -> bytes:
    """Header line plus compact JSON payload. Raises ValueError for non-JSON values."""
    body = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode("utf-8")
    digest = hashlib.sha256(body).hexdigest()
    return b"SHARD-STATE v1 sha256=%s length=%d\n" % (digest.encode("ascii"), len(body)) + body


def decode_state_file(data: bytes, where: str = "state file") -> Any:
    """The payload of a state file; :class:`CorruptStateError` says what is wrong."""
    if not data:
        raise CorruptStateError(f"{where} is empty (truncated)")
    header, sep, body = data.partition(b"\n")
    match = _HEADER_RE.fullmatch(header)
    if not sep or match is None:
        if b"SHARD-STATE".startswith(header[:11]) and not sep:
            raise CorruptStateError(f"{where} is truncated inside its header line")
        raise CorruptStateError(f"{where} has no valid 'SHARD-STATE v1' header line")
    digest, length = match.group(1).decode("ascii"), int(match.group(2))
    if len(body) < length:
        raise CorruptStateError(
            f"{where} is truncated: header announces {length} payload bytes, found {len(body)}"
        )
    if len(body) > length:
        raise CorruptStateError(
            f"{where} is corrupted: header announces {length} payload bytes, found {len(body)}"
        )
    actual = hashlib.sha256(body).hexdigest()
    if actual != digest:
        raise CorruptStateError(
            f"{where} is corrupted: checksum mismatch (header sha256={digest}, "
            f"payload sha256={actual})"
        )
    try:
        return json.loads(body)
    except ValueError as exc:  # cannot happen unless the writer was broken
        raise CorruptStateError(f"{where} payload is not JSON: {exc}") from exc


class StateStore:
    """The state file in one data directory, held under an exclusive lock."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / STATE_FILE_NAME
        self._tmp_path = self.data_dir / f".{STATE_FILE_NAME}.tmp"
        self.journal_path = self.data_dir / JOURNAL_FILE_NAME
        self._lock_fd: int | None = None
        self._journal_fd: int | None = None
        self.journal_bytes = 0
        self._journal_allocated = 0  # the journal file's size: records, then zeros
        self.snapshot_bytes = 0

    def open(self) -> None:
        """Create the directory if needed and lock it against a second server."""
        try:
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(
                self.data_dir / LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
        except OSError as exc:
            raise StateError(f"cannot use data directory {self.data_dir}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise StateLockedError(
                f"data directory {self.data_dir} is in use by another shard-server"
            ) from exc
        self._lock_fd = fd
        self._tmp_path.unlink(missing_ok=True)  # leftover of a crash mid-commit

    def close(self) -> None:
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    def load(self) -> Any | None:
        """The stored payload, or ``None`` when there is no state file yet."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read state file {self.path}: {exc}") from exc
        self.snapshot_bytes = len(data)
        return decode_state_file(data, f"state file {self.path}")

    def load_journal(self) -> JournalContents:
        """The journal's records (none if there is no journal), minus a torn tail."""
        try:
            data = self.journal_path.read_bytes()
        except FileNotFoundError:
            return JournalContents([], 0, 0)
        except OSError as exc:
            raise StateError(f"cannot read journal {self.journal_path}: {exc}") from exc
        try:
            contents = decode_journal(data, f"journal {self.journal_path}")
        except JournalCorrupt as exc:
            raise CorruptStateError(str(exc)) from exc
        self.journal_bytes = contents.valid_bytes
        return contents

    def append(self, data: bytes) -> int:
        """Write records at the journal's end and make them durable; return the journal's
        size (its records, not its preallocated zeros). Blocking IO.

        The journal is preallocated: zeros are written ahead (at least
        :data:`JOURNAL_PREALLOCATE_BYTES` at a time) in the same commit as the first record
        that needs them, so that later commits overwrite bytes already on disk and their
        ``fdatasync`` has no file size or block map to update. A crash leaves records,
        maybe a torn last one, then zeros, which :func:`.journal.decode_journal` ignores.
        """
        if self._journal_fd is None:
            self._journal_fd = os.open(
                self.journal_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
            self._journal_allocated = os.fstat(self._journal_fd).st_size
        fd = self._journal_fd
        offset = self.journal_bytes
        end = offset + len(data)
        if end > self._journal_allocated:
            size = max(end, self._journal_allocated + JOURNAL_PREALLOCATE_BYTES)
            _write_all(fd, bytes(size - self._journal_allocated), self._journal_allocated)
            self._journal_allocated = size
        _write_all(fd, data, offset)
        os.fdatasync(fd)
        if os.fstat(fd).st_nlink == 0:
            # writing to a file someone removed succeeds, but nothing would survive
            raise OSError(f"journal {self.journal_path} was removed while in use")
        self.journal_bytes = end
        return end

    def checkpoint(self, payload: Any) -> int:
        """Replace the snapshot with ``payload``, then empty the journal. Blocking IO."""
        written = self.save(payload)
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.journal_bytes = 0
        self._journal_allocated = 0
        return written

    def checkpoint_due(self) -> bool:
        """Whether the journal has grown past both the minimum and the snapshot."""
        return self.journal_bytes > max(CHECKPOINT_MIN_JOURNAL_BYTES, self.snapshot_bytes)

    def save(self, payload: Any) -> int:
        """Atomically replace the state file; return the bytes written. Blocking IO."""
        data = encode_state_file(payload)
        fd = os.open(self._tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self._tmp_path, self.path)
        dir_fd = os.open(self.data_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self.snapshot_bytes = len(data)
        return len(data)


def _others_ready() -> bool:
    """Whether other callbacks are ready to run in this pass of the event loop (requests
    that may record changes before the next poll). When none is, yielding would only
    cost a loop pass: nothing else can record a change before it. Reads asyncio's ready
    queue, a private attribute of its loops; a loop without one is taken to have some."""
    ready = getattr(asyncio.get_running_loop(), "_ready", None)
    return ready is None or len(ready) > 0


CommitHook = Callable[[int, int, float], None]
"""Called after each commit with (changes covered, bytes written, seconds taken)."""


class GroupCommitter:
    """Makes versions of the state durable, batching whatever accumulates meanwhile.

    :meth:`record` is called on the event loop with each accepted change, in version
    order. :meth:`wait_durable` first lets every other request that is ready in this pass
    of the event loop run (one ``sleep(0)``, skipped when there is none), so that they
    record their changes too; then the first waiter that finds its version not yet
    durable commits every record not yet on disk: one write and one ``fdatasync``, inline
    on the event loop, with no task, no future and no further wake-up. The other waiters
    of that batch resume in the same pass and find their version durable; requests
    arriving during the ``fdatasync`` queue in the kernel and share the next commit.
    (Handing the append to a worker thread when requests are in flight, so that the loop
    keeps working during the ``fdatasync``, measured no faster with 32 in flight: the hop
    costs CPU that the loop and the clients share.)

    When a checkpoint is due, ``snapshot()`` (called on the event loop, so it sees a
    consistent state) gives ``(version, payload)`` and the snapshot is written instead, in
    a worker thread; waiters meanwhile await that one commit. Stored values are never
    mutated, so sharing them with the thread is safe.
    """

    def __init__(
        self,
        store: StateStore,
        snapshot: Callable[[], tuple[int, Any]],
        durable_version: int,
        on_commit: CommitHook | None = None,
    ) -> None:
        self._store = store
        self._snapshot = snapshot
        self._durable = durable_version
        self._recorded = durable_version
        self._pending: list[bytes] = []
        self._on_commit = on_commit
        self._running: asyncio.Future[None] | None = None  # the checkpoint, if one runs
        self.failure: BaseException | None = None
        self.checkpoints = 0

    @property
    def durable_version(self) -> int:
        return self._durable

    def record(self, version: int, line: bytes) -> None:
        """Queue the journal line of the change that made ``version``."""
        self._pending.append(line)
        self._recorded = version

    async def wait_durable(self, version: int) -> None:
        """Return once ``version`` is on disk; :class:`PersistenceFailed` if it cannot be."""
        if version <= self._durable:
            return
        if self.failure is None and _others_ready():
            # one pass of the event loop: requests that are ready record their changes
            # first, and one commit covers them all
            await asyncio.sleep(0)
        while version > self._durable:
            if self.failure is not None:
                raise PersistenceFailed(str(self.failure)) from self.failure
            if self._running is None:
                if not self._store.checkpoint_due():
                    self._append_inline()
                    continue
                self._running = asyncio.ensure_future(self._checkpoint())
            # shield: a cancelled request (client gone) must not cancel the checkpoint
            await asyncio.shield(self._running)

    async def close(self, checkpoint: bool = False) -> None:
        """Wait for the commit in progress, if any; then, if asked and the state is
        healthy, write a snapshot so that the next start has no journal to replay."""
        while self._running is not None:
            await asyncio.gather(self._running, return_exceptions=True)
        if checkpoint and self.failure is None and (self._store.journal_bytes or self._pending):
            self._running = asyncio.ensure_future(self._checkpoint())
            await self._running
            if self.failure is not None:
                raise PersistenceFailed(str(self.failure)) from self.failure

    def _take_pending(self) -> tuple[int, bytes]:
        if not self._pending:  # cannot happen: every version above the durable one is pending
            raise RuntimeError(f"version {self._recorded} is recorded but has no record")
        lines, self._pending = self._pending, []
        return self._recorded, lines[0] if len(lines) == 1 else b"".join(lines)

    def _append_inline(self) -> None:
        started = time.perf_counter()
        version, data = self._take_pending()
        try:
            written = self._store.append(data)
        except Exception as exc:
            self._fail(exc)
            raise PersistenceFailed(str(exc)) from exc
        self._committed(version, written, started)

    async def _checkpoint(self) -> None:
        """Write a snapshot of every recorded change and empty the journal, in a worker
        thread."""
        started = time.perf_counter()
        version, payload = self._snapshot()
        self._pending = []  # the snapshot holds every recorded change
        try:
            written = await asyncio.to_thread(self._store.checkpoint, payload)
        except BaseException as exc:
            self._fail(exc)
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self._running = None
        self.checkpoints += 1
        self._committed(version, written, started)

    def _committed(self, version: int, written: int, started: float) -> None:
        covered, self._durable = version - self._durable, version
        if self._on_commit is not None:
            self._on_commit(covered, written, time.perf_counter() - started)

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            log.critical("persisting the shard state failed: %r", exc)
            self.failure = exc
