"""Log set-up: human-readable text or one JSON object per line.

The handler sits on the root logger, so kopf's own loggers (``kopf.*``, whose
per-object lines carry the object in ``k8s_ref``) and aiohttp's go through it too.
"""

from __future__ import annotations

import logging
import sys


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        from pythonjsonlogger.core import RESERVED_ATTRS
        from pythonjsonlogger.json import JsonFormatter

        # kopf's per-object lines carry its settings and a skip flag as extras: leave
        # those out (they are not data), keep k8s_ref (the object's kind/name/uid).
        handler.setFormatter(JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            reserved_attrs=[*RESERVED_ATTRS, "settings", "k8s_skip"]))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kopf adds no handler of its own when embedded (kopf.operator()); make sure any
    # handler a library added does not print the same line a second time, unformatted.
    for name in ("kopf", "aiohttp"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("kopf").setLevel(max(level, logging.INFO))
    # kopf logs "Handler ... succeeded" for every watch event at INFO: at 10,000 shards
    # that is most of the operator's work. Its per-object warnings and errors stay.
    if level > logging.DEBUG:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
