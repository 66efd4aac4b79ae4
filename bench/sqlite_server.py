"""Scenario 7's SQLite variant: the shard server's own application, cells and group
commit, with the state kept in SQLite (stdlib ``sqlite3``, WAL, ``synchronous=FULL``)
instead of the hand-written snapshot + journal. ``python -m bench.sqlite_server PORT DIR``.

Same promise: an answer is sent only once the SQLite transaction holding its change has
committed, and with WAL + ``synchronous=FULL`` a commit fsyncs the WAL, so nothing
answered is lost. A group commit is one transaction applying every pending change to
the ``slots`` / ``cells`` / ``meta`` tables (the state lives in the tables: no snapshot,
no journal of our own). The change records reach this store as the server's journal
lines and are decoded again here; that costs a few microseconds per change, against
SQLite, and is far below the 10 % that would decide.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from shard_operator.server.app import create_app
from shard_operator.server.metrics import ServerMetrics
from shard_operator.server.shard import Shard
from shard_operator.server.state import MISSING, ShardState

KEY = (b"bench",)


class SqliteStore:
    """The parts of ``StateStore`` that ``GroupCommitter`` uses, on SQLite."""

    journal_bytes = 0

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(directory / "shard.sqlite3", isolation_level=None,
                                  check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(
            "CREATE TABLE IF NOT EXISTS slots (key BLOB, height INTEGER, value TEXT, "
            "  PRIMARY KEY (key, height)) WITHOUT ROWID;"
            "CREATE TABLE IF NOT EXISTS cells (key BLOB PRIMARY KEY, watermark INTEGER);"
            "CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY, version INTEGER);"
            "INSERT OR IGNORE INTO meta VALUES (0, 0);")
        self.db.execute("INSERT OR IGNORE INTO cells VALUES (?, 0)", (KEY[0],))

    def checkpoint_due(self) -> bool:
        return False

    def checkpoint(self, payload: Any) -> int:  # the tables are the state
        return 0

    def append(self, data: bytes) -> int:
        """Apply the changes of ``data`` (journal lines) in one durable transaction."""
        db = self.db
        db.execute("BEGIN")
        try:
            version = 0
            for line in data.splitlines():
                record = json.loads(line[9:])
                version = record["v"]
                height = record["h"]
                op = record["op"]
                if op == "reserve":  # value NULL = reserved
                    db.execute("INSERT INTO slots VALUES (?, ?, NULL)", (KEY[0], height))
                elif op == "write":
                    db.execute("UPDATE slots SET value = ? WHERE key = ? AND height = ?",
                               (json.dumps(record["value"]), KEY[0], height))
                elif op == "unreserve":
                    db.execute("DELETE FROM slots WHERE key = ? AND height = ?",
                               (KEY[0], height))
                else:
                    db.execute("UPDATE cells SET watermark = ? WHERE key = ?", (height, KEY[0]))
            db.execute("UPDATE meta SET version = ? WHERE id = 0", (version,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return len(data)

    def close(self) -> None:
        self.db.close()


async def serve(port: int, directory: Path) -> None:
    store = SqliteStore(directory)
    state = ShardState.initial("bench", [(KEY, MISSING)])
    metrics = ServerMetrics()
    shard = Shard(state, store=store, on_commit=metrics.on_commit)  # type: ignore[arg-type]
    runner = web.AppRunner(create_app(shard, metrics=metrics), handler_cancellation=True,
                           access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        store.close()


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(int(sys.argv[1]), Path(sys.argv[2])))


if __name__ == "__main__":
    main()
