"""The no-op baseline of scenario 7: aiohttp answering the shard API's routes without
doing anything but parse the JSON body. ``python -m bench.noop_server PORT``."""

from __future__ import annotations

import sys

from aiohttp import web


async def noop(request: web.Request) -> web.Response:
    await request.json()
    return web.json_response({"result": "ok"})


async def ready(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


def main() -> None:
    app = web.Application()
    for route in ("reserve", "write", "advance-watermark", "read"):
        app.router.add_post(f"/v1/{route}", noop)
    app.router.add_get("/readyz", ready)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
