"""Wiring: build the board, the web app and the loops, then run them."""

import asyncio
import gc
import json
import time

from microdot import Microdot, Response

import camwatch
from camwatch import board as board_layer

DEFAULT_HTTP_PORT = 80


def make_app(board):
    app = Microdot()
    started = time.ticks_ms()
    try:
        with open("/web/assets.json") as f:
            assets = json.load(f)
    except OSError:
        assets = {}

    @app.get("/")
    async def index(request):
        return _asset(request, "index.html")

    def _asset(request, name):
        meta = assets.get(name)
        if meta is None:
            return "not found", 404
        etag = '"' + meta["etag"] + '"'
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if request.headers.get("If-None-Match") == etag:
            return "", 304, headers
        res = Response.send_file("/web/" + name + ".gz", content_type=meta["type"],
                                 compressed=True)
        res.headers.update(headers)
        return res

    @app.get("/api/status")
    async def status(request):
        gc.collect()
        return {
            "version": camwatch.__version__,
            "board": board.info.get("id"),
            "uptime_s": time.ticks_diff(time.ticks_ms(), started) // 1000,
            "heap_free": gc.mem_free(),
        }

    # last: routes match in order, and this one matches every path
    @app.get("/<path:name>")
    async def static(request, name):
        return _asset(request, name)

    return app


def run():
    board = board_layer.load()
    app = make_app(board)
    host, port = board.http_bind(DEFAULT_HTTP_PORT)
    print("camwatch %s on %s: dashboard at http://%s:%d/"
          % (camwatch.__version__, board.info.get("id"), board.address(), port))
    asyncio.run(app.start_server(host=host, port=port))
