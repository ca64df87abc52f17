"""From MQTT's thread to every open page: batching into asyncio, then Server-Sent Events.

Why SSE and not a websocket: the page only listens. SSE is plain HTTP (one long GET answered with
`text/event-stream`), passes through the token middleware and any reverse proxy like any other
request, and the browser's EventSource reconnects by itself; each (re)connection starts with a
full snapshot, so a page that lost its connection is whole again within a second.

At fleet rates (hundreds of events per second) sending every event to every page would cost the
browser more than the dashboard. Instead the devices that changed are pushed together every
PUSH_INTERVAL_S, each as its current view; a device going online or offline is pushed at once.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from dashboard.device_messages import FACE_LABELS, DeviceMessage
from dashboard.live_state import TRACE_BUCKET_S, LiveState

PUSH_INTERVAL_S = 0.25
KEEPALIVE_S = 15.0
CLIENT_QUEUE = 64
RATE_WINDOW_S = 5.0


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class LivePush:
    def __init__(self, state: LiveState, figures: Callable[[], dict[str, Any]]) -> None:
        """`figures` returns the ingest counters (received, stored, backlog, ...) shown in the header."""
        self.state = state
        self._figures = figures
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._pending: list[DeviceMessage] = []
        self._clients: set[asyncio.Queue[bytes | None]] = set()
        self._applied = 0
        self._rate_samples: deque[tuple[float, int]] = deque()

    @property
    def pages(self) -> int:
        """Pages connected to the live stream now."""
        return len(self._clients)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    # MQTT's network thread.
    def submit(self, message: DeviceMessage) -> None:
        """Queue a message for the asyncio thread; wakes it once per batch, not once per message."""
        with self._lock:
            self._pending.append(message)
            wake = len(self._pending) == 1
        if wake and self._loop is not None:
            self._loop.call_soon_threadsafe(self._drain)

    # The asyncio thread.
    def _drain(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        urgent = False
        for message in batch:
            urgent = self.state.apply(message) or urgent
        self._applied += len(batch)
        if urgent:
            self._push()

    def figures(self) -> dict[str, Any]:
        """The ingest counters plus messages/s over the last RATE_WINDOW_S."""
        now = time.monotonic()
        self._rate_samples.append((now, self._applied))
        while len(self._rate_samples) > 2 and now - self._rate_samples[1][0] >= RATE_WINDOW_S:
            self._rate_samples.popleft()
        (t0, n0), (t1, n1) = self._rate_samples[0], self._rate_samples[-1]
        rate = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
        return {**self._figures(), "messages_per_s": round(rate, 1)}

    def _broadcast(self, chunk: bytes) -> None:
        for client in list(self._clients):
            if client.full():  # a page that cannot keep up reconnects and starts from a snapshot
                self._clients.discard(client)
                client.get_nowait()
                client.put_nowait(None)
            else:
                client.put_nowait(chunk)

    def _push(self) -> None:
        changes = self.state.take_changes()
        if changes and self._clients:
            self._broadcast(_sse("update", {"now": time.time(), "devices": changes}))

    async def run(self) -> None:
        """Push changed devices every PUSH_INTERVAL_S and the ingest figures every second."""
        ticks = 0
        while True:
            await asyncio.sleep(PUSH_INTERVAL_S)
            self._push()
            ticks += 1
            if ticks % round(1 / PUSH_INTERVAL_S) == 0:
                figures = self.figures()
                if self._clients:
                    self._broadcast(_sse("figures", figures))

    def close_streams(self) -> None:
        """End every open stream (on shutdown, so the server need not wait for them)."""
        for client in self._clients:
            client.put_nowait(None)
        self._clients.clear()

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """GET /events: a snapshot of every device, then updates until the page goes away."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        await response.prepare(request)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(CLIENT_QUEUE)
        self._clients.add(queue)
        try:
            await response.write(b"retry: 1000\n\n" + _sse("snapshot", {
                "now": time.time(), "labels": FACE_LABELS, "trace_s": self.state.trace_s,
                "trace_bucket_s": TRACE_BUCKET_S, "devices": self.state.snapshot(),
                "figures": self.figures()}))
            while True:
                try:
                    chunk = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    chunk = b": keepalive\n\n"
                if chunk is None:
                    break
                await response.write(chunk)
        except ConnectionResetError:
            pass  # the page went away
        finally:
            self._clients.discard(queue)
        return response
