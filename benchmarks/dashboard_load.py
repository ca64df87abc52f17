"""`python -m benchmarks.dashboard_load`: can one dashboard keep up with a fleet?

Starts mosquitto on loopback (or uses --broker), the dashboard as its own process, and N simulated
devices (each its own MQTT connection) publishing R events per second each for S seconds (default
50 x 10/s for 60 s: 500 events/s, plus each device's stats and state once a second). It watches
the live stream as a page would (aiohttp's client reading /events) and reports:

- messages/s the dashboard handled (its own counter over the publishing window);
- its CPU (percent of one core) and resident memory (peak and at the end), from psutil;
- events published (acknowledged by the broker) against events stored (counted in SQLite);
- pushes the page received and the longest gap between two of them (is the page still live?).

The last line printed is one JSON object with those figures. No figure is judged here: the
test (tests/test_dashboard_load.py) asserts only that every event was stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import psutil

from benchmarks.fleet_simulator import SimulatedFleet
from demo.local_broker import MosquittoBroker
from demo.local_dashboard import DashboardProcess

FLEET_NAME = "loadsim"


class StreamWatcher:
    """Reads the dashboard's /events as a browser would, on its own thread, and times the pushes."""

    def __init__(self, url: str) -> None:
        self.url = url + "events"
        self.pushes = 0
        self.max_gap_s = 0.0
        self._last: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._read()), name="stream-watcher",
                                        daemon=True)

    def start(self) -> StreamWatcher:
        self._thread.start()
        return self

    async def _read(self) -> None:
        async with aiohttp.ClientSession() as session, session.get(self.url) as response:
            while not self._stop.is_set():
                try:
                    line = await asyncio.wait_for(response.content.readline(), 0.5)
                except TimeoutError:
                    continue
                if not line:
                    return
                if line.startswith(b"event: update"):
                    now = time.monotonic()
                    if self._last is not None:
                        self.max_gap_s = max(self.max_gap_s, now - self._last)
                    self._last, self.pushes = now, self.pushes + 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def count_stored(db_path: Path, name: str = FLEET_NAME) -> int:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT COUNT(*) FROM events WHERE device LIKE ?", (f"{name}-%",)).fetchone()[0]


def _health(dashboard: DashboardProcess) -> dict[str, Any]:
    return json.loads(dashboard.get("api/health"))


def run_load(workdir: Path, devices: int = 50, rate_hz: float = 10.0, seconds: float = 60.0,
             broker_url: str | None = None, during: Callable[[str], None] | None = None,
             report: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the load and return the figures; `during(page_url)` runs while the fleet publishes
    (the test opens the page in Chromium there)."""
    workdir.mkdir(parents=True, exist_ok=True)
    broker = None
    if broker_url is None:
        broker = MosquittoBroker(workdir / "broker").start()
        broker_url = broker.url
    parts = urlsplit(broker_url)
    db_path = workdir / "history.sqlite3"
    dashboard = DashboardProcess(broker_url, db_path, workdir / "dashboard.log").start()
    try:
        process = psutil.Process(dashboard.pid)
        watcher = StreamWatcher(dashboard.url).start()
        report(f"{devices} devices x {rate_hz:g} events/s for {seconds:g} s -> {dashboard.url}")
        fleet = SimulatedFleet(parts.hostname or "127.0.0.1", parts.port or 1883, devices, rate_hz,
                               name=FLEET_NAME).start()
        started = time.monotonic()
        cpu_start = sum(process.cpu_times()[:2])
        received_start = _health(dashboard)["received"]
        rss_peak = 0.0
        if during is not None:
            during(dashboard.url)
        while (elapsed := time.monotonic() - started) < seconds:
            time.sleep(min(1.0, seconds - elapsed))
            rss_peak = max(rss_peak, process.memory_info().rss / 2**20)
        window = time.monotonic() - started
        cpu_s = sum(process.cpu_times()[:2]) - cpu_start
        received = _health(dashboard)["received"] - received_start
        published = fleet.stop(say_offline=False)
        drained_at = time.monotonic()
        while _health(dashboard)["stored"] < published and time.monotonic() - drained_at < 60:
            time.sleep(0.2)
        drain_s = time.monotonic() - drained_at
        rss_end = process.memory_info().rss / 2**20
        watcher.stop()
    finally:
        code = dashboard.stop()
        if broker is not None:
            broker.stop()
    stored = count_stored(db_path)
    figures = {"devices": devices, "rate_hz_per_device": rate_hz, "seconds": round(window, 1),
               "messages_per_s": round(received / window, 1), "cpu_percent": round(100.0 * cpu_s / window, 1),
               "rss_mb_peak": round(max(rss_peak, rss_end), 1), "rss_mb_end": round(rss_end, 1),
               "events_published": published, "events_stored": stored, "drain_s": round(drain_s, 2),
               "page_pushes": watcher.pushes, "page_max_gap_s": round(watcher.max_gap_s, 2),
               "dashboard_exit_code": code}
    report(f"handled {figures['messages_per_s']} messages/s (events, stats, state) at "
           f"{figures['cpu_percent']}% of one core, RSS {figures['rss_mb_peak']} MB peak")
    report(f"events published {published}, stored {stored} (counted in SQLite), "
           f"last stored {drain_s:.2f} s after publishing stopped")
    report(f"page: {watcher.pushes} live pushes, longest gap {watcher.max_gap_s:.2f} s")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dashboard_load",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--rate", type=float, default=10.0, help="events per second per device")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--broker", metavar="URL", help="an existing broker (default: our own mosquitto)")
    parser.add_argument("--workdir", type=Path, help="keep history and logs here (default: a temp folder)")
    args = parser.parse_args(argv)
    if args.workdir is not None:
        figures = run_load(args.workdir, args.devices, args.rate, args.seconds, args.broker)
    else:
        with tempfile.TemporaryDirectory(prefix="dashboard-bench-") as tmp:
            figures = run_load(Path(tmp), args.devices, args.rate, args.seconds, args.broker)
    print(json.dumps({"bench": "dashboard_load", **figures}))
    return 0 if figures["events_stored"] == figures["events_published"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
