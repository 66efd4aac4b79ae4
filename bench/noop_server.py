"""The no-op baseline of scenario 7: aiohttp answering the shard API's routes without
doing anything but parse the JSON body. ``python -m bench.noop_server PORT [DIR]``.

With ``DIR``, the ceiling of the sequential cycle: the same no-op server, plus one small
append + ``fdatasync`` to a file in ``DIR`` before answering each reserve, write and
advance-watermark (the three changes of a cycle), on the event loop, paced by the
cycle's own round trips as the shard server's commits are.
"""

from __future__ import annotations

import os
import sys

from aiohttp import web

_RECORD = b"x" * 100 + b"\n"


async def noop(request: web.Request) -> web.Response:
    await request.json()
    return web.json_response({"result": "ok"})


async def ready(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


def main() -> None:
    app = web.Application()
    fd = None
    if len(sys.argv) > 2:
        os.makedirs(sys.argv[2], exist_ok=True)
        fd = os.open(os.path.join(sys.argv[2], "noop-fsync"),
                     os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o600)

    async def change(request: web.Request) -> web.Response:
        await request.json()
        assert fd is not None
        os.write(fd, _RECORD)
        os.fdatasync(fd)
        return web.json_response({"result": "ok"})

    for route in ("reserve", "write", "advance-watermark", "read"):
        handler = change if fd is not None and route != "read" else noop
        app.router.add_post(f"/v1/{route}", handler)
    app.router.add_get("/readyz", ready)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
