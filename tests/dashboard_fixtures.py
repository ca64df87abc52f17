"""Helpers for the dashboard tests: headless Chromium, the dashboard as a process, simulated devices.

Chromium is Debian's (`apt-get install chromium`), driven by the playwright package; `playwright
install` is never run (it would download a browser of its own). When chromium is missing and this
runs as root, it is installed with apt-get; the browser tests skip only when that is impossible
or the browser cannot start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from benchmarks.fleet_simulator import SimulatedDevice
from dashboard.device_messages import iso_time
from demo.local_dashboard import DashboardProcess

CHROMIUM = "/usr/bin/chromium"
BURST = 500
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_problem() -> str | None:
    """None when Debian's chromium is there (installing it if we may), else why not."""
    if os.access(CHROMIUM, os.X_OK):
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "chromium is not installed and cannot be installed here (sudo apt-get install chromium)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]
    for command in (["apt-get", "update", "-qq"], install):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            return f"could not install chromium: {' '.join(command)}: {result.stderr.strip()[-300:]}"
    return None if os.access(CHROMIUM, os.X_OK) else "apt-get ran but /usr/bin/chromium is missing"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium per test module (pages are cheap, browsers are not). Module scope: each
    module imports its own copy of this fixture, and playwright's sync API allows one at a time."""
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install -e .[dev])")
    problem = chromium_problem()
    if problem:
        pytest.skip(problem)
    with sync_api.sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except sync_api.Error as exc:
            pytest.skip(f"chromium does not start: {str(exc).splitlines()[0]}")
        yield chromium
        chromium.close()


@pytest.fixture
def dashboards() -> Iterator[Callable[..., DashboardProcess]]:
    """start(broker_url, workdir, *args, port=None): the dashboard as its own process with its history
    in `workdir`; every one still running is stopped when the test ends, passed or failed."""
    started: list[DashboardProcess] = []

    def start(broker_url: str, workdir: Path, *args: str, port: int | None = None) -> DashboardProcess:
        workdir.mkdir(parents=True, exist_ok=True)
        dashboard = DashboardProcess(broker_url, workdir / "history.sqlite3", workdir / "dashboard.log",
                                     *args, port=port)
        started.append(dashboard)
        return dashboard.start()

    yield start
    for dashboard in started:
        dashboard.stop()


def device(port: int, device_id: str, seed: int = 0, with_voice: bool = False) -> SimulatedDevice:
    """A connected simulated device (its retained `online` status is published)."""
    return SimulatedDevice(device_id, "127.0.0.1", port, seed=seed, with_voice=with_voice).connect()


def backfill(sim: SimulatedDevice, seconds: float, every_s: float, end: float,
             settle: Callable[[int], None]) -> int:
    """Publish events dated over the past `seconds` (one per `every_s`), as if the dashboard had been
    watching all along; the events' own time is what the history files them under.

    `settle(n)` is called after every BURST events and must wait until the dashboard has them:
    mosquitto keeps at most max_queued_messages (default 1000) for a subscriber and drops the rest.
    """
    count = 0
    t = end - seconds
    while t < end:
        event = sim.next_event()
        event["time"] = iso_time(t)
        sim.publish_event(event)
        count += 1
        t += every_s
        if count % BURST == 0:
            settle(count)
    settle(count)
    return count


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
