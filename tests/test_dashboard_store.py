"""The dashboard's SQLite history: batched inserts, duplicates, retention, CSV export, restarts."""

from __future__ import annotations

import csv
import io
import sqlite3
import time
from pathlib import Path

import pytest

from benchmarks.fleet_simulator import event_message, status_message
from dashboard.device_messages import FACE_LABELS, DeviceMessage, iso_time
from dashboard.history_store import EVENT_COLUMNS, HistoryStore, StoreError

BOOT = "0" * 31 + "1"
DAY = 86400.0


def event(device: str, seq: int, at: float, emotion: str = "happy", boot: str = BOOT) -> DeviceMessage:
    probabilities = {label: (0.7 if label == emotion else 0.05) for label in FACE_LABELS}
    payload = event_message(device, boot, seq, "change", 1, probabilities)
    payload["time"] = iso_time(at)
    return DeviceMessage(device, "events", payload, at + 0.01)


@pytest.fixture
def store(tmp_path: Path):
    s = HistoryStore(tmp_path / "history.sqlite3", retention_s=7 * DAY).open()
    s.start()
    yield s
    s.close()


def test_events_are_stored_in_batches_with_every_field(store: HistoryStore) -> None:
    now = time.time()
    for seq in range(1, 1001):
        store.put(event("pi-a", seq, now - 1000 + seq))
    assert store.flush()
    assert store.count_events() == 1000 == store.stored
    with sqlite3.connect(store.path) as conn:
        row = dict(zip(EVENT_COLUMNS, conn.execute(
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE seq = 5").fetchone(), strict=True))
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"
    assert row["device"] == "pi-a" and row["emotion"] == "happy" and row["type"] == "change"
    assert row["p_happy"] == pytest.approx(0.7) and row["box_w"] == 160
    assert row["ts"] == pytest.approx(now - 995, abs=0.002)  # the event's own time, to the millisecond


def test_a_redelivered_event_is_stored_once_and_malformed_ones_are_counted(store: HistoryStore) -> None:
    now = time.time()
    store.put(event("pi-a", 1, now))
    store.put(event("pi-a", 1, now))  # QoS 1 may deliver twice
    store.put(event("pi-a", 1, now, boot="f" * 32))  # same seq, another boot: another event
    store.put(DeviceMessage("pi-a", "events", {"kind": "event", "type": "change"}, now))  # no boot/seq
    store.put(DeviceMessage("pi-a", "stats", {"fps": 3}, now))  # not history
    assert store.flush()
    assert store.count_events("pi-a") == 2 == store.stored
    assert store.rejected == 1
    assert store.backlog == 0


def test_status_changes_and_devices_are_kept(store: HistoryStore) -> None:
    now = time.time()
    for status in ("online", "offline", "offline"):  # a retained status comes again on every reconnect
        store.put(DeviceMessage("pi-b", "status", status_message("pi-b", BOOT, status), now))
    store.put(event("pi-a", 1, now))
    assert store.flush()
    known = {d["device"]: d for d in store.known_devices()}
    assert known["pi-b"]["status"] == "offline" and known["pi-b"]["boot_id"] == BOOT
    assert known["pi-a"]["status"] is None and known["pi-a"]["last_event_ts"] == pytest.approx(now, abs=0.002)
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM statuses").fetchone()[0] == 2


def test_retention_prunes_old_events_and_forgotten_devices(store: HistoryStore) -> None:
    assert store.flush()  # past the writer's own prune at start
    now = time.time()
    store.put(event("pi-old", 1, now - 8 * DAY))
    for seq, age_days in enumerate((8.5, 7.2, 6.9, 0.1), start=1):
        store.put(event("pi-a", seq, now - age_days * DAY))
    assert store.flush()
    assert store.prune(now - store.retention_s) == 3
    assert store.count_events("pi-a") == 2
    assert [d["device"] for d in store.known_devices()] == ["pi-a"]


def test_the_writer_prunes_by_itself_at_start(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    first = HistoryStore(path, retention_s=DAY).open()
    first.start()
    first.put(event("pi-a", 1, time.time() - 2 * DAY))
    first.put(event("pi-a", 2, time.time()))
    first.close()
    second = HistoryStore(path, retention_s=DAY).open()
    second.start()
    assert second.flush()
    assert second.count_events() == 1
    second.close()


def test_csv_export_of_a_time_range(store: HistoryStore) -> None:
    now = time.time()
    for seq in range(1, 11):
        store.put(event("pi-a", seq, now - 100 + seq * 10, "sad" if seq % 2 else "happy"))
        store.put(event("pi-b", seq, now - 100 + seq * 10))
    assert store.flush()
    text = "".join(store.csv_chunks("pi-a", now - 65, now - 25, rows_per_chunk=2))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["seq"]) for r in rows] == [4, 5, 6, 7]  # [from, to): 70 s .. 30 s ago
    assert {r["device"] for r in rows} == {"pi-a"}
    assert rows[0]["emotion"] == "happy" and rows[1]["emotion"] == "sad"
    assert rows[0]["time"].endswith("Z") and float(rows[0]["p_happy"]) == pytest.approx(0.7)
    everything = list(csv.DictReader(io.StringIO("".join(store.csv_chunks(None, now - 200, now + 1)))))
    assert len(everything) == 20


def test_restart_keeps_everything_stored(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    now = time.time()
    first = HistoryStore(path, retention_s=7 * DAY).open()
    first.start()
    for seq in range(1, 501):
        first.put(event("pi-a", seq, now - 500 + seq))
    first.close()  # what is queued is written before the writer stops
    second = HistoryStore(path, retention_s=7 * DAY).open()
    second.start()
    assert second.count_events("pi-a") == 500
    day = second.day("pi-a", now - DAY, 600.0)
    assert sum(b["n"] for b in day) == 500 and all(b["counts"] == {"happy": b["n"]} for b in day)
    recent = second.recent_events("pi-a", now - 60)
    assert len(recent) == 60 and recent[-1][1:] == ("change", 1, *(event("pi-a", 1, now).payload[k]
                                                                  for k in ("valence", "arousal")))
    second.close()


def test_an_unusable_database_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no-such-folder"):
        HistoryStore(tmp_path / "no-such-folder" / "h.sqlite3", retention_s=DAY).open()
