"""The change journal's record format. Pure: bytes in, bytes or records out.

Between two snapshots of the state file, each accepted change is appended to the
journal as one line::

    <crc32 of the JSON, 8 hex digits> <compact JSON>\\n

The JSON is a change record (see :func:`.state.change_record`), carrying the state
version it produced. JSON escapes newlines, so a line is exactly one record.

A crash can leave the last append incomplete (a *torn tail*): a final line without its
newline or with a wrong checksum, after which nothing valid follows. Such a tail was
never acknowledged (answers wait for the fsync that follows the append) and is dropped.
An invalid line followed by a valid one is corruption, not a torn append.

The file is preallocated with zeros ahead of its last record (the store overwrites them,
so that a commit's fdatasync has no file size to update); a record never holds a zero
byte (JSON escapes it), so the zeros at the end are not records and are ignored.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

JOURNAL_FILE_NAME = "shard-journal.v1"


class JournalCorrupt(ValueError):
    """An invalid record with valid records after it: not a torn append."""


_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))
"""Built once: ``json.dumps`` with options would build an encoder per call."""


def encode_record(record: dict[str, Any]) -> bytes:
    """One journal line. Raises ValueError for values JSON cannot carry (NaN, ...)."""
    body = _ENCODER.encode(record).encode("utf-8")
    return b"%08x %s\n" % (zlib.crc32(body), body)


def _decode_line(line: bytes) -> dict[str, Any] | None:
    """The record of one complete line (without its newline), or None if it is invalid."""
    crc, sep, body = line.partition(b" ")
    # the exact spelling encode_record writes: int(crc, 16) would also take "A" for "a"
    if not sep or crc != b"%08x" % zlib.crc32(body):
        return None
    try:
        record = json.loads(body)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


@dataclass(frozen=True)
class JournalContents:
    """The valid records of a journal, and how many bytes of torn tail follow them."""

    records: list[dict[str, Any]]
    valid_bytes: int
    torn_bytes: int


def decode_journal(data: bytes, where: str = "journal") -> JournalContents:
    """Every record up to a torn tail; :class:`JournalCorrupt` if valid records follow
    an invalid one."""
    records: list[dict[str, Any]] = []
    offset = 0
    bad_at: int | None = None
    data = data.rstrip(b"\0")  # preallocated, never written
    while offset < len(data):
        end = data.find(b"\n", offset)
        complete = end >= 0
        line = data[offset:end] if complete else data[offset:]
        record = _decode_line(line) if complete else None
        if record is None:
            if bad_at is None:
                bad_at = offset
        elif bad_at is not None:
            raise JournalCorrupt(
                f"{where} is corrupted: invalid record at byte {bad_at} followed by a "
                f"valid record at byte {offset}"
            )
        else:
            records.append(record)
        offset = end + 1 if complete else len(data)
    valid = len(data) if bad_at is None else bad_at
    return JournalContents(records, valid, len(data) - valid)
