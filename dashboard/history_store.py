"""Every event and status change in SQLite, written in batches by one writer thread.

Why this shape:
- SQLite is embedded (nothing to install or run on a Pi) and a single file to back up.
- One writer thread owns the only writing connection and inserts whatever has queued up in one
  transaction: a commit costs about the same for 1 row or 2,000, so 500 messages/s cost a handful
  of commits per second. MQTT's network thread only drops messages into the writer's queue and
  never waits for the disk.
- WAL journal: readers (the page's history, CSV export) never block the writer nor it them;
  `synchronous=NORMAL` is durable across a crash of the process, which is what a restart needs.
- Events are unique per (device, boot_id, seq): a QoS 1 message the broker delivers twice (after a
  reconnect) is stored once, so counts are exact.
- `devices` keeps one row per device (last event, last status), so start-up and pruning never
  scan the events table.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dashboard.device_messages import (
    FACE_LABELS,
    DeviceMessage,
    face_probabilities,
    integer,
    iso_time,
    message_time,
    number,
    text,
)

log = logging.getLogger("edge-emotion.dashboard.store")

MAX_BATCH = 5000
PRUNE_EVERY_S = 600.0
PRUNE_CHUNK = 20000

EVENT_COLUMNS = ("device", "boot_id", "seq", "ts", "received_at", "type", "track_id", "emotion",
                 "confidence", *(f"p_{label}" for label in FACE_LABELS), "valence", "arousal",
                 "box_x", "box_y", "box_w", "box_h", "voice_emotion", "voice_confidence",
                 "fused_emotion")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS events (
    device TEXT NOT NULL, boot_id TEXT NOT NULL, seq INTEGER NOT NULL, ts REAL NOT NULL,
    received_at REAL NOT NULL, type TEXT NOT NULL, track_id INTEGER, emotion TEXT, confidence REAL,
    {", ".join(f"p_{label} REAL" for label in FACE_LABELS)}, valence REAL, arousal REAL,
    box_x INTEGER, box_y INTEGER, box_w INTEGER, box_h INTEGER,
    voice_emotion TEXT, voice_confidence REAL, fused_emotion TEXT,
    UNIQUE (device, boot_id, seq));
CREATE INDEX IF NOT EXISTS events_by_device_time ON events (device, ts);
CREATE TABLE IF NOT EXISTS statuses (
    device TEXT NOT NULL, boot_id TEXT NOT NULL, status TEXT NOT NULL, ts REAL NOT NULL,
    received_at REAL NOT NULL, version TEXT, UNIQUE (device, boot_id, status));
CREATE TABLE IF NOT EXISTS devices (
    device TEXT PRIMARY KEY, last_event_ts REAL, status TEXT, status_ts REAL, boot_id TEXT);
"""

INSERT_EVENT = (f"INSERT OR IGNORE INTO events ({', '.join(EVENT_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})")
INSERT_STATUS = ("INSERT OR IGNORE INTO statuses (device, boot_id, status, ts, received_at, version) "
                 "VALUES (?, ?, ?, ?, ?, ?)")
UPSERT_LAST_EVENT = ("INSERT INTO devices (device, last_event_ts) VALUES (?, ?) ON CONFLICT (device) "
                     "DO UPDATE SET last_event_ts = MAX(COALESCE(last_event_ts, 0), excluded.last_event_ts)")
UPSERT_STATUS = ("INSERT INTO devices (device, status, status_ts, boot_id) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT (device) DO UPDATE SET status = excluded.status, "
                 "status_ts = excluded.status_ts, boot_id = excluded.boot_id")


class StoreError(RuntimeError):
    """The database cannot be opened or created; the message says which file and why."""


def event_row(message: DeviceMessage) -> tuple | None:
    """The events-table row of an event message, or None when it lacks its identity (boot_id, seq)."""
    p = message.payload
    boot_id, seq, kind = text(p.get("boot_id")), integer(p.get("seq")), text(p.get("type"))
    if boot_id is None or seq is None or kind is None:
        return None
    probabilities = face_probabilities(p.get("probabilities")) or {}
    box = p.get("box") if isinstance(p.get("box"), dict) else {}
    voice = p.get("voice") if isinstance(p.get("voice"), dict) else {}
    if isinstance(voice.get("utterance"), dict):  # what the voice said so far, not one 2 s window
        voice = voice["utterance"]
    fused = p.get("fused") if isinstance(p.get("fused"), dict) else {}
    return (message.device, boot_id, seq, message_time(p, message.received_at), message.received_at, kind,
            integer(p.get("track_id")), text(p.get("emotion")), number(p.get("confidence")),
            *(probabilities.get(label) for label in FACE_LABELS), number(p.get("valence")),
            number(p.get("arousal")), *(integer(box.get(k)) for k in "xywh"), text(voice.get("emotion")),
            number(voice.get("confidence")), text(fused.get("emotion")))


def status_row(message: DeviceMessage) -> tuple | None:
    p = message.payload
    boot_id, status = text(p.get("boot_id")), text(p.get("status"))
    if boot_id is None or status not in ("online", "offline"):
        return None
    return (message.device, boot_id, status, message_time(p, message.received_at), message.received_at,
            text(p.get("version")))


class HistoryStore:
    """Owns the database file: the writer thread, retention pruning and the read queries."""

    def __init__(self, path: Path, retention_s: float, prune_every_s: float = PRUNE_EVERY_S) -> None:
        self.path = Path(path)
        self.retention_s = retention_s
        self.prune_every_s = prune_every_s
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._run, name="history-writer", daemon=True)
        # Each counter has one writing thread: `queued` the MQTT thread, the others the writer.
        self.queued = 0  # messages handed to put()
        self.written = 0  # of those, processed by the writer (stored, duplicate or rejected)
        self.stored = 0  # events inserted (a duplicate delivery is not counted)
        self.rejected = 0  # event or status messages without the fields that identify them

    # Start-up and shutdown.
    def open(self) -> HistoryStore:
        """Create the schema and switch to WAL; StoreError when the file cannot be used."""
        try:
            with contextlib.closing(self._connect()) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot use the history database {self.path}: {exc}; check that its folder "
                             "exists and is writable (--db)") from None
        return self

    def start(self) -> None:
        self._writer.start()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the writer."""
        if self._writer.is_alive():
            self._inbox.put(("stop",))
            self._writer.join(timeout)

    # Any thread.
    def put(self, message: DeviceMessage) -> None:
        """Queue an events or status message for writing; other kinds are not history."""
        if message.kind in ("events", "status"):
            self.queued += 1
            self._inbox.put(("message", message))

    @property
    def backlog(self) -> int:
        """Messages queued and not yet written."""
        return self.queued - self.written

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued before this call is written (tests, the bench)."""
        done = threading.Event()
        self._inbox.put(("flush", done))
        return done.wait(timeout)

    def prune(self, before: float, timeout: float = 60.0) -> int:
        """Have the writer delete what is older than `before` now; the number of events deleted."""
        reply: queue.SimpleQueue = queue.SimpleQueue()
        self._inbox.put(("prune", before, reply))
        return reply.get(timeout=timeout)

    # The writer thread.
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _run(self) -> None:
        conn = self._connect()
        next_prune = time.monotonic()
        stopping = False
        while not stopping:
            items: list[tuple] = []
            try:
                items.append(self._inbox.get(timeout=max(0.0, next_prune - time.monotonic())))
                while len(items) < MAX_BATCH:
                    items.append(self._inbox.get_nowait())
            except queue.Empty:
                pass
            messages = [item[1] for item in items if item[0] == "message"]
            self._write(conn, messages)
            self.written += len(messages)
            if time.monotonic() >= next_prune:
                self._prune(conn, time.time() - self.retention_s)
                next_prune = time.monotonic() + self.prune_every_s
            for item in items:
                if item[0] == "flush":
                    item[1].set()
                elif item[0] == "prune":
                    item[2].put(self._prune(conn, item[1]))
                stopping = stopping or item[0] == "stop"
        conn.close()

    def _write(self, conn: sqlite3.Connection, messages: list[DeviceMessage]) -> None:
        if not messages:
            return
        events, statuses = [], []
        for message in messages:
            row = event_row(message) if message.kind == "events" else status_row(message)
            if row is None:
                self.rejected += 1
            else:
                (events if message.kind == "events" else statuses).append(row)
        last_event: dict[str, float] = {}
        for row in events:
            last_event[row[0]] = max(last_event.get(row[0], 0.0), row[3])
        try:
            with conn:
                cursor = conn.executemany(INSERT_EVENT, events)
                inserted = max(cursor.rowcount, 0)
                conn.executemany(UPSERT_LAST_EVENT, last_event.items())
                for row in statuses:
                    conn.execute(INSERT_STATUS, row)
                    conn.execute(UPSERT_STATUS, (row[0], row[2], row[3], row[1]))
        except sqlite3.Error as exc:
            log.error("could not write %d messages to %s: %s", len(messages), self.path, exc)
            return
        self.stored += inserted

    def _prune(self, conn: sqlite3.Connection, before: float) -> int:
        """Delete events and status changes older than `before`, in chunks (short transactions)."""
        deleted = 0
        devices = [row[0] for row in conn.execute("SELECT device FROM devices")]
        try:
            for device in devices:
                while True:
                    with conn:
                        n = conn.execute("DELETE FROM events WHERE rowid IN (SELECT rowid FROM events "
                                         "WHERE device = ? AND ts < ? LIMIT ?)",
                                         (device, before, PRUNE_CHUNK)).rowcount
                    deleted += n
                    if n < PRUNE_CHUNK:
                        break
            with conn:
                conn.execute("DELETE FROM statuses WHERE ts < ?", (before,))
                conn.execute("DELETE FROM devices WHERE COALESCE(last_event_ts, 0) < ? "
                             "AND COALESCE(status_ts, 0) < ?", (before, before))
        except sqlite3.Error as exc:
            log.error("could not prune %s: %s", self.path, exc)
        if deleted:
            log.info("pruned %d events older than %s", deleted, iso_time(before))
        return deleted

    # Readers: a connection each, so they run in any thread alongside the writer (WAL).
    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        with contextlib.closing(self._connect()) as conn:
            return conn.execute(sql, params).fetchall()

    def count_events(self, device: str | None = None) -> int:
        if device is None:
            return self._read("SELECT COUNT(*) FROM events")[0][0]
        return self._read("SELECT COUNT(*) FROM events WHERE device = ?", (device,))[0][0]

    def known_devices(self) -> list[dict[str, Any]]:
        """Every device with history: its last status (None if never seen) and last event time."""
        rows = self._read("SELECT device, status, status_ts, boot_id, last_event_ts FROM devices "
                          "ORDER BY device")
        return [{"device": d, "status": s, "status_ts": st, "boot_id": b, "last_event_ts": le}
                for d, s, st, b, le in rows]

    def recent_events(self, device: str, since: float) -> list[tuple]:
        """(time, type, track_id, valence, arousal) of the device's events since `since`, oldest first:
        what the live trace is rebuilt from after a restart."""
        return self._read("SELECT ts, type, track_id, valence, arousal FROM events "
                          "WHERE device = ? AND ts >= ? ORDER BY ts, seq", (device, since))

    def day(self, device: str, since: float, bin_s: float) -> list[dict[str, Any]]:
        """Per `bin_s`: event count, count per emotion, mean valence and arousal."""
        rows = self._read("SELECT CAST(ts / ? AS INTEGER) AS b, emotion, COUNT(*), AVG(valence), "
                          "AVG(arousal) FROM events WHERE device = ? AND ts >= ? "
                          "GROUP BY b, emotion ORDER BY b",
                          (bin_s, device, since))
        bins: dict[int, dict[str, Any]] = {}
        for b, emotion, n, valence, arousal in rows:
            entry = bins.setdefault(b, {"t": b * bin_s, "n": 0, "counts": {}, "_v": 0.0, "_a": 0.0})
            entry["n"] += n
            entry["counts"][emotion or "unknown"] = n
            entry["_v"] += (valence or 0.0) * n
            entry["_a"] += (arousal or 0.0) * n
        return [{"t": e["t"], "n": e["n"], "counts": e["counts"], "valence": round(e.pop("_v") / e["n"], 4),
                 "arousal": round(e.pop("_a") / e["n"], 4)} for e in bins.values()]

    def csv_chunks(self, device: str | None, start: float, end: float, rows_per_chunk: int = 2000
                   ) -> Iterator[str]:
        """The events of [start, end) (one device or all) as CSV text, a chunk at a time, oldest first."""
        where, params = "ts >= ? AND ts < ?", (start, end)
        if device is not None:
            where, params = "device = ? AND " + where, (device, *params)
        header = ["time", "received_at", *EVENT_COLUMNS[:3], *EVENT_COLUMNS[5:]]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        with contextlib.closing(self._connect()) as conn:
            cursor = conn.execute(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE {where} "
                                  "ORDER BY ts, device, seq", params)
            while rows := cursor.fetchmany(rows_per_chunk):
                for row in rows:
                    writer.writerow([iso_time(row[3]), iso_time(row[4]), *row[:3], *row[5:]])
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        if buffer.tell():
            yield buffer.getvalue()
