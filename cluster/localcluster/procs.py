"""Processes on this machine, found by what their command line names."""

from __future__ import annotations

import os
from pathlib import Path


def processes_naming(marker: str) -> list[int]:
    """Pids (other than this one) whose command line contains ``marker``; a command
    line that is not UTF-8 is read with replacement characters."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in raw.replace(b"\0", b" ").decode(errors="replace"):
            found.append(int(entry.name))
    return found
