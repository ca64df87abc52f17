"""End to end in headless Chromium: a real mosquitto, simulated devices, `python -m dashboard`.

Events published to the broker appear on the page within a second, a device's retained `offline`
status shows at once, and the history (and the broker's queue for the dashboard's persistent
session) survives a restart of the dashboard. Each test saves a screenshot in its tmp_path;
with EDGE_EMOTION_DASHBOARD_SCREENSHOT=docs/dashboard.png the fleet screenshot is also written
there (the one the README shows).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from dashboard.device_messages import FACE_LABELS
from demo.local_dashboard import ROOT
from device.runtime.voice_labels import VOICE_LABELS
from tests.dashboard_fixtures import backfill, browser, dashboards, device, wait_until  # noqa: F401

pytestmark = pytest.mark.integration

SCREENSHOT_ENV = "EDGE_EMOTION_DASHBOARD_SCREENSHOT"


def leaning(emotion: str, p: float = 0.76, labels: tuple[str, ...] = FACE_LABELS) -> dict[str, float]:
    rest = (1.0 - p) / (len(labels) - 1)
    return {label: (p if label == emotion else rest) for label in labels}


def card(device_id: str) -> str:
    return f'article.card[data-device="{device_id}"]'


def seconds_until_text(page, selector: str, text: str, timeout_ms: int = 5000) -> float:
    """Wait until the element shows `text`; the seconds it took."""
    started = time.monotonic()
    page.wait_for_function("([sel, text]) => { const e = document.querySelector(sel); "
                           "return e !== null && e.textContent.trim() === text; }",
                           arg=[selector, text], timeout=timeout_ms, polling=20)
    return time.monotonic() - started


def stored_events(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]


def test_live_events_offline_and_restart(mosquitto, browser, dashboards, tmp_path: Path) -> None:  # noqa: F811
    workdir = tmp_path / "dashboard"
    dashboard = dashboards(mosquitto.url, workdir)
    kitchen = device(mosquitto.port, "kitchen-pi")
    kitchen.publish_stats()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(dashboard.url)
    page.wait_for_selector(f'{card("kitchen-pi")} .status[data-status="online"]', timeout=10000)
    page.wait_for_selector(f'{card("kitchen-pi")} .latency .bar', timeout=10000)  # stats drawn

    delays = []
    for kind, emotion in [("appear", "happy"), ("change", "sad"), ("change", "surprise")]:
        kitchen.publish_event(kitchen.make_event(1, kind, leaning(emotion)))
        face = f'{card("kitchen-pi")} .face[data-track="1"]'
        delays.append(seconds_until_text(page, f"{face} .emotion", emotion))
    print(f"event to page: {', '.join(f'{d * 1000:.0f} ms' for d in delays)}")
    assert max(delays) < 1.0
    widths = page.eval_on_selector_all(f'{card("kitchen-pi")} .face[data-track="1"] .bar span',
                                       "els => els.map(s => [s.dataset.label, parseFloat(s.style.width)])")
    expected = {label: 100 * p for label, p in leaning("surprise").items()}
    assert dict(widths) == pytest.approx(expected, abs=0.01)
    heard = {"vad": {"voiced": True, "active_fraction": 0.6, "level_db": -21.0}, "age_s": 0.2,
             "emotion": "sad", "confidence": 0.55, "probabilities": leaning("sad", 0.55, VOICE_LABELS),
             "utterance": {"emotion": "angry", "confidence": 0.62, "readings": 5}}
    kitchen.publish_event(kitchen.make_event(1, "heartbeat", leaning("surprise"), heard))
    seconds_until_text(page, f'{card("kitchen-pi")} .voice b', "angry")  # the utterance leads
    assert "over 5 windows · this window sad 55%" in page.text_content(f'{card("kitchen-pi")} .voice')

    kitchen.publish_status("offline")  # retained, as the daemon's goodbye or its will
    offline_s = seconds_until_text(page, f'{card("kitchen-pi")} .status', "offline")
    print(f"offline to page: {offline_s * 1000:.0f} ms")
    assert offline_s < 1.0
    assert page.text_content(f'{card("kitchen-pi")} .faces').strip() == "device offline"
    page.screenshot(path=str(tmp_path / "dashboard-offline.png"), full_page=True)

    assert dashboard.stop() == 0
    db = workdir / "history.sqlite3"
    before = stored_events(db)
    assert before == 4
    # While the dashboard is down the device comes back (a new boot) and reports a face: the broker
    # keeps it for the dashboard's persistent session.
    kitchen.close(say_offline=False)
    kitchen = device(mosquitto.port, "kitchen-pi", seed=1)
    kitchen.publish_event(kitchen.make_event(1, "appear", leaning("angry")))
    dashboard = dashboards(mosquitto.url, workdir, port=dashboard.port)
    assert wait_until(lambda: stored_events(db) == before + 1)

    # The open page reconnects by itself and gets a fresh snapshot.
    seconds_until_text(page, f'{card("kitchen-pi")} .status', "online", timeout_ms=10000)
    page.reload()
    page.wait_for_selector(f'{card("kitchen-pi")} .day rect.bin', timeout=10000)
    assert "5 events" in page.get_attribute(f'{card("kitchen-pi")} .day svg', "aria-label")
    assert page.locator(f'{card("kitchen-pi")} .trace polyline').count() >= 2  # valence and arousal
    history = json.loads(dashboard.get("api/history?device=kitchen-pi"))
    assert sum(b["n"] for b in history["bins"]) == 5
    rows = list(csv.DictReader(io.StringIO(dashboard.get("export.csv?device=kitchen-pi").decode())))
    assert [r["emotion"] for r in rows] == ["happy", "sad", "surprise", "surprise", "angry"]
    assert [r["voice_emotion"] for r in rows] == ["", "", "", "angry", ""]  # the utterance, as shown
    page.screenshot(path=str(tmp_path / "dashboard-after-restart.png"), full_page=True)
    assert errors == []
    kitchen.close()
    assert dashboard.stop() == 0


def test_screenshot_of_a_small_fleet(mosquitto, browser, dashboards, tmp_path: Path) -> None:  # noqa: F811
    """A day of history and a live minute for four devices: the picture in the README."""
    dashboard = dashboards(mosquitto.url, tmp_path / "dashboard")
    names = ["hall-pi", "kitchen-pi", "office-pi", "porch-pi"]
    fleet = [device(mosquitto.port, name, seed=i + 3, with_voice=name == "kitchen-pi")
             for i, name in enumerate(names)]
    now = time.time()
    published = 0

    def settle(count: int) -> None:
        assert wait_until(lambda: json.loads(dashboard.get("api/health"))["stored"] >= published + count,
                          timeout=60)

    for sim in fleet:  # a day at one event a minute, then the last 10 minutes at one per 2 s
        published += backfill(sim, 86400 - 600, 60.0, now - 600, settle)
        published += backfill(sim, 600, 2.0, now, settle)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(dashboard.url)
    for _ in range(12):  # live: a few events a second and the stats
        for sim in fleet:
            sim.publish_next()
            sim.publish_stats()
        time.sleep(0.25)
    fleet[-1].publish_status("offline")
    seconds_until_text(page, f'{card("porch-pi")} .status', "offline")
    for name in names:
        page.wait_for_selector(f'{card(name)} .day rect.bin', timeout=10000)
    time.sleep(0.5)
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    target = os.environ.get(SCREENSHOT_ENV)
    if target:
        (ROOT / target).write_bytes(shot.read_bytes())
    for sim in fleet[:-1]:
        sim.close()
    assert dashboard.stop() == 0
