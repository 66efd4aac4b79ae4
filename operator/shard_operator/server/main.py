"""``shard-server``: the command-line entry point of the shard server.

Start-up: read the environment (see :mod:`.config`), lock ``SHARD_DATA_DIR``, restore the
state file and replay its journal (or create the state from ``SHARD_INITIAL_VALUE``), then
serve. Exit codes:

- 0: stopped by SIGTERM/SIGINT;
- 1: could not listen, or an unexpected error;
- 2: bad configuration (environment or flags);
- 3: the state on disk cannot be used (corrupted, truncated, another shard's, locked);
- 4: persisting the state failed while serving (the server stops rather than serve state
  that is not on disk; its restart restores the last durable state).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import click
from aiohttp import web

from ..keycodec import key_to_base64
from .app import DEFAULT_MAX_BODY_BYTES, create_app
from .config import ConfigError, ShardConfig
from .metrics import ServerMetrics
from .shard import Shard
from .state import ShardState, StateFormatError
from .store import CorruptStateError, StateError, StateStore

log = logging.getLogger("shard_operator.server")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_STATE = 3
EXIT_PERSISTENCE = 4


def restore_state(config: ShardConfig, store: StateStore) -> ShardState:
    """The state to serve: restored from ``store``, or fresh (and saved) if there is none.

    Raises :class:`StateError` when the file cannot be used; never falls back to an empty
    state in that case.
    """
    payload = store.load()
    if payload is None:
        orphan = store.load_journal()
        if orphan.records or orphan.torn_bytes:
            raise CorruptStateError(
                f"journal {store.journal_path} holds {len(orphan.records)} change(s) but there "
                f"is no state file {store.path} for them to follow"
            )
        state = ShardState.initial(config.node_id, [(config.key, config.initial_value)])
        store.checkpoint(state.to_payload())
        log.info("no state file in %s: starting fresh", store.data_dir)
        return state
    try:
        state = ShardState.from_payload(payload)
    except StateFormatError as exc:
        raise CorruptStateError(
            f"state file {store.path} is not a valid shard state: {exc}"
        ) from exc
    if state.node_id != config.node_id:
        raise StateError(
            f"state file {store.path} belongs to node id {state.node_id!r}, "
            f"but SHARD_NODE_ID is {config.node_id!r}"
        )
    if set(state.cells) != {config.key}:
        held = [key_to_base64(key) for key in state.cells]
        raise StateError(
            f"state file {store.path} holds key(s) {held} (base64 segments), "
            f"but SHARD_KEY is {key_to_base64(config.key)}"
        )
    snapshot_version = state.version
    journal = store.load_journal()
    try:
        replayed = state.replay(journal.records)
    except StateFormatError as exc:
        raise CorruptStateError(
            f"journal {store.journal_path} does not follow state file {store.path}: {exc}"
        ) from exc
    if journal.torn_bytes:
        log.warning(
            "journal %s ends with %d byte(s) of an append that a crash interrupted; they were "
            "never acknowledged and are dropped",
            store.journal_path,
            journal.torn_bytes,
        )
    if journal.records or journal.torn_bytes:
        store.checkpoint(state.to_payload())
    cell = state.cells[config.key]
    log.info(
        "restored state version %d from %s (snapshot version %d, %d journal record(s) "
        "replayed): watermark %d, %d slot(s) (SHARD_INITIAL_VALUE, if set, is ignored)",
        state.version,
        store.path,
        snapshot_version,
        replayed,
        cell.watermark,
        sum(1 for _ in cell.slots()),
    )
    return state


async def serve(
    config: ShardConfig,
    state: ShardState,
    store: StateStore,
    *,
    host: str,
    port: int,
    max_body_bytes: int,
    shutdown_timeout: float,
    access_log: bool,
) -> int:
    """Serve until SIGTERM/SIGINT (0) or a persistence failure (4)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    exit_code = EXIT_OK

    def on_failure(exc: BaseException) -> None:
        nonlocal exit_code
        if exit_code == EXIT_OK:
            log.critical("stopping: the state could not be persisted (%s)", exc)
        exit_code = EXIT_PERSISTENCE
        stop.set()

    metrics = ServerMetrics()
    shard = Shard(
        state,
        config.key_encoding,
        store=store,
        on_commit=metrics.on_commit,
        on_failure=on_failure,
    )
    app = create_app(shard, metrics=metrics, max_body_bytes=max_body_bytes)
    runner = web.AppRunner(
        app,
        handler_cancellation=True,  # a disconnected client cancels (retracts) its read
        shutdown_timeout=shutdown_timeout,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            log.critical("cannot listen on %s:%d: %s", host, port, exc)
            return EXIT_ERROR
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        for address in runner.addresses:
            log.info(
                "shard-server for node %s key %s listening on %s:%d",
                config.node_id,
                list(config.key_segments),
                address[0],
                address[1],
            )
        await stop.wait()
        log.info("stopping")
    finally:
        await runner.cleanup()
    return exit_code


def _configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port, logged at start-up).",
)
@click.option(
    "--max-body-bytes",
    default=DEFAULT_MAX_BODY_BYTES,
    show_default=True,
    type=click.IntRange(min=1024),
    help="Larger request bodies are refused with 413.",
)
@click.option(
    "--shutdown-timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to let in-flight requests finish on SIGTERM.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option(
    "--log-format", default="text", show_default=True, type=click.Choice(["text", "json"])
)
@click.option("--access-log/--no-access-log", default=False, show_default=True)
def main(
    host: str,
    port: int,
    max_body_bytes: int,
    shutdown_timeout: float,
    log_level: str,
    log_format: str,
    access_log: bool,
) -> None:
    """Serve one shard's cell over HTTP/JSON (configured by SHARD_* environment variables:
    SHARD_NODE_ID, SHARD_KEY, SHARD_KEY_ENCODING, SHARD_INITIAL_VALUE, SHARD_DATA_DIR)."""
    _configure_logging(log_level, log_format)
    try:
        config = ShardConfig.from_env(os.environ)
    except ConfigError as exc:
        log.critical("configuration error: %s", exc)
        sys.exit(EXIT_CONFIG)
    if config.data_dir_defaulted:
        log.warning("SHARD_DATA_DIR is not set: persisting to %s", config.data_dir.resolve())

    store = StateStore(config.data_dir)
    try:
        store.open()
        state = restore_state(config, store)
    except StateError as exc:
        store.close()
        log.critical(
            "refusing to start: %s. The state on disk is kept untouched; move it away to "
            "start empty (losing it) or restore it from a copy.",
            exc,
        )
        sys.exit(EXIT_STATE)
    try:
        code = asyncio.run(
            serve(
                config,
                state,
                store,
                host=host,
                port=port,
                max_body_bytes=max_body_bytes,
                shutdown_timeout=shutdown_timeout,
                access_log=access_log,
            )
        )
    finally:
        store.close()
    sys.exit(code)
