"""The HTTP side: the page and its files, the live stream, the day's history and CSV export.

Why aiohttp: one maintained asyncio dependency that is both the HTTP server and the HTTP client
(the load bench reads the live stream with it), with no separate ASGI server to choose and tune
(Starlette needs uvicorn too); Server-Sent Events are a plain streamed response in it, and it has
wheels for the Pi's aarch64. Everything the page loads is served from dashboard/static: a Pi on
a network without internet shows the same page.

SQLite reads run in the default executor, so a long CSV export never stalls the live stream.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from dashboard.history_store import HistoryStore
from dashboard.live_push import LivePush
from dashboard.web_access import token_middleware

STATIC_DIR = Path(__file__).resolve().parent / "static"
DAY_BIN_S = 600.0
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

STORE_KEY = web.AppKey("store", HistoryStore)
PUSH_KEY = web.AppKey("push", LivePush)
RETENTION_KEY = web.AppKey("retention_s", float)


@web.middleware
async def security_headers(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    """Only our own scripts run and nothing frames the page (device ids come from the network)."""
    response = await handler(request)
    if not response.prepared:
        response.headers.update(SECURITY_HEADERS)
    return response


def parse_when(value: str | None, default: float, name: str) -> float:
    """Epoch seconds or ISO-8601 (a time without zone is UTC); HTTP 400 naming the parameter."""
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}={value!r} is not a time: give ISO-8601 "
                                      "(2026-05-01T12:00:00Z) or epoch seconds\n") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def health(request: web.Request) -> web.Response:
    """The ingest counters, for monitoring and the load bench."""
    return web.json_response(request.app[PUSH_KEY].figures())


async def history(request: web.Request) -> web.Response:
    """GET /api/history?device=ID&hours=24: the device's events in DAY_BIN_S bins."""
    device = request.query.get("device")
    if not device:
        raise web.HTTPBadRequest(text="device= is required\n")
    try:
        hours = float(request.query.get("hours", "24"))
    except ValueError:
        raise web.HTTPBadRequest(text="hours= must be a number\n") from None
    hours = min(max(hours, 0.1), request.app[RETENTION_KEY] / 3600.0)
    since = time.time() - hours * 3600.0
    bins = await asyncio.get_running_loop().run_in_executor(
        None, request.app[STORE_KEY].day, device, since, DAY_BIN_S)
    return web.json_response({"device": device, "since": since, "bin_s": DAY_BIN_S, "bins": bins})


async def export_csv(request: web.Request) -> web.StreamResponse:
    """GET /export.csv?device=ID&from=T&to=T: stored events of [from, to) as CSV (default: the last
    24 hours of every device), streamed as it is read."""
    now = time.time()
    end = parse_when(request.query.get("to"), now, "to")
    start = parse_when(request.query.get("from"), end - 86400.0, "from")
    if start >= end:
        raise web.HTTPBadRequest(text="from must be before to\n")
    device = request.query.get("device") or None
    label = re.sub(r"[^A-Za-z0-9_.-]", "_", device or "all")
    stamp = dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="edge-emotion-{label}-{stamp}.csv"',
        **SECURITY_HEADERS})
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    chunks = request.app[STORE_KEY].csv_chunks(device, start, end)
    try:
        while (chunk := await loop.run_in_executor(None, next, chunks, None)) is not None:
            await response.write(chunk.encode())
    finally:
        await loop.run_in_executor(None, chunks.close)
    await response.write_eof()
    return response


def build_app(store: HistoryStore, push: LivePush, retention_s: float, token: str | None) -> web.Application:
    middlewares = [security_headers] + ([token_middleware(token)] if token else [])
    app = web.Application(middlewares=middlewares)
    app[STORE_KEY], app[PUSH_KEY], app[RETENTION_KEY] = store, push, retention_s
    app.router.add_get("/", index)
    app.router.add_get("/events", push.stream)
    app.router.add_get("/api/health", health)
    app.router.add_get("/api/history", history)
    app.router.add_get("/export.csv", export_csv)
    app.router.add_static("/static/", STATIC_DIR)

    async def end_streams(app: web.Application) -> None:
        push.close_streams()

    app.on_shutdown.append(end_streams)
    return app
