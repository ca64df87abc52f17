"""What the page shows right now, per device, kept in memory and updated message by message.

Every message is applied in the asyncio thread, in arrival order. Rules:
- a face (track) appears with `appear`, is updated by `change` and `heartbeat`, leaves with `end`;
- the retained `state` replaces the set of faces only when it is not older than the last event
  seen from that boot (QoS 0 state and QoS 1 events can overtake each other): that is how the
  page learns the current faces of a device at start-up, before any event;
- `offline` clears the faces and the voice (nothing is current any more) and is pushed at once;
- the valence/arousal trace is the mean over the faces in view (each at its latest event), sampled
  at every event and averaged over TRACE_BUCKET_S buckets by the events' own time, for the last
  `trace_minutes`. Averaging the events themselves would zigzag between two faces that happen to
  take turns reporting. At start-up the same rule replays the stored events of that period, so a
  restarted dashboard draws the trace it drew before.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from dashboard.device_messages import (
    DeviceMessage,
    face_probabilities,
    integer,
    message_time,
    number,
    text,
)

TRACE_BUCKET_S = 2.0
STATS_KEYS = ("fps", "stage_ms", "faces", "cpu_temp_c", "rss_mb", "uptime_s", "dropped_frames",
              "queue_depth", "events_dropped", "audio")


def _track(payload: dict[str, Any], received_at: float) -> dict[str, Any]:
    """A face as the page draws it; probabilities may be None (the `state` topic has none)."""
    track = {"track_id": integer(payload.get("track_id")), "emotion": text(payload.get("emotion")),
             "confidence": number(payload.get("confidence")),
             "probabilities": face_probabilities(payload.get("probabilities")),
             "valence": number(payload.get("valence")), "arousal": number(payload.get("arousal")),
             "updated": received_at}
    fused = payload.get("fused")
    if isinstance(fused, dict):
        track["fused"] = {"emotion": text(fused.get("emotion")),
                          "confidence": number(fused.get("confidence"))}
    return track


@dataclass
class DeviceView:
    device: str
    trace_s: float
    status: str = "unknown"
    status_since: float | None = None
    boot_id: str | None = None
    version: str | None = None
    stats: dict[str, Any] | None = None
    stats_at: float | None = None
    tracks: dict[int, dict[str, Any]] = field(default_factory=dict)
    voice: dict[str, Any] | None = None
    voice_at: float | None = None
    events: int = 0
    last_seen: float | None = None
    last_event_boot_seq: tuple[str, int] | None = None
    trace: deque[list[float]] = field(default_factory=deque)  # [bucket start, sum v, sum a, n]
    faces_va: dict[int, tuple[float, float]] = field(default_factory=dict)  # for the trace

    def apply(self, message: DeviceMessage) -> bool:
        """Update from one message; True when the change must reach the page at once."""
        self.last_seen = message.received_at
        p = message.payload
        if message.kind == "status":
            return self._status(p, message.received_at)
        if message.kind == "stats":
            self.stats = {key: p.get(key) for key in STATS_KEYS if key in p}
            self.stats_at = message.received_at
        elif message.kind == "state":
            self._state(p, message.received_at)
        else:
            self._event(p, message.received_at)
        return False

    def _status(self, p: dict[str, Any], received_at: float) -> bool:
        status = text(p.get("status"))
        if status not in ("online", "offline"):
            return False
        changed = status != self.status or text(p.get("boot_id")) != self.boot_id
        if changed:
            self.status, self.status_since = status, message_time(p, received_at)
        self.boot_id, self.version = text(p.get("boot_id")), text(p.get("version"))
        if status == "offline":
            self.tracks.clear()
            self.faces_va.clear()
            self.voice = self.voice_at = None
        return changed

    def _state(self, p: dict[str, Any], received_at: float) -> None:
        boot_id, seq, tracks = text(p.get("boot_id")), integer(p.get("seq")), p.get("tracks")
        if self.status == "offline" or seq is None or not isinstance(tracks, list):
            return
        last = self.last_event_boot_seq
        if last is not None and last[0] == boot_id and seq < last[1]:
            return  # older than an event we already applied
        current = {}
        for item in tracks:
            if isinstance(item, dict) and integer(item.get("track_id")) is not None:
                track = _track(item, received_at)
                known = self.tracks.get(track["track_id"])
                if known is not None and known["emotion"] == track["emotion"]:
                    track["probabilities"] = known["probabilities"]
                current[track["track_id"]] = track
        self.tracks = current
        self.faces_va = {i: (t["valence"], t["arousal"]) for i, t in current.items()
                         if t["valence"] is not None and t["arousal"] is not None}

    def _event(self, p: dict[str, Any], received_at: float) -> None:
        self.events += 1
        boot_id, seq = text(p.get("boot_id")), integer(p.get("seq"))
        if boot_id is not None and seq is not None:
            self.last_event_boot_seq = (boot_id, seq)
        track_id = integer(p.get("track_id"))
        if track_id is not None:
            if p.get("type") == "end":
                self.tracks.pop(track_id, None)
            else:
                self.tracks[track_id] = _track(p, received_at)
        if isinstance(p.get("voice"), dict):
            self.voice, self.voice_at = p["voice"], received_at
        self.trace_event(message_time(p, received_at), text(p.get("type")), track_id,
                         number(p.get("valence")), number(p.get("arousal")))

    def trace_event(self, t: float, kind: str | None, track_id: int | None, valence: float | None,
                    arousal: float | None) -> None:
        """Update the faces in view from one event and sample their mean into the trace."""
        if track_id is None:
            return
        if kind == "end":
            self.faces_va.pop(track_id, None)
        elif valence is not None and arousal is not None:
            self.faces_va[track_id] = (valence, arousal)
        if self.faces_va:
            n = len(self.faces_va)
            self._add_to_trace(t, sum(v for v, _ in self.faces_va.values()) / n,
                               sum(a for _, a in self.faces_va.values()) / n)

    def _add_to_trace(self, t: float, valence: float, arousal: float) -> None:
        start = t - t % TRACE_BUCKET_S
        if self.trace and self.trace[-1][0] == start:
            bucket = self.trace[-1]
            bucket[1] += valence
            bucket[2] += arousal
            bucket[3] += 1
        elif not self.trace or start > self.trace[-1][0]:
            self.trace.append([start, valence, arousal, 1])
        # An event older than the last bucket (a late delivery) is in the history, not in the trace.

    def _trace_points(self, since: float, tail_only: bool) -> list[list[float]]:
        while self.trace and self.trace[0][0] < since:
            self.trace.popleft()
        buckets = [self.trace[i] for i in range(max(0, len(self.trace) - 2), len(self.trace))] \
            if tail_only else self.trace
        return [[t, round(v / n, 3), round(a / n, 3)] for t, v, a, n in buckets]

    def as_json(self, now: float, tail_only: bool) -> dict[str, Any]:
        """The device as the page gets it; `tail_only` sends the last two trace buckets (the one
        being filled may have changed), not the whole trace."""
        return {"device": self.device, "status": self.status, "status_since": self.status_since,
                "boot_id": self.boot_id, "version": self.version, "stats": self.stats,
                "stats_at": self.stats_at,
                "tracks": sorted(self.tracks.values(), key=lambda t: t["track_id"]),
                "voice": self.voice, "voice_at": self.voice_at, "events": self.events,
                "last_seen": self.last_seen, "trace": self._trace_points(now - self.trace_s, tail_only),
                "trace_complete": not tail_only}


class LiveState:
    """Every device's view and which of them changed since the last push."""

    def __init__(self, trace_minutes: float) -> None:
        self.trace_s = trace_minutes * 60.0
        self.devices: dict[str, DeviceView] = {}
        self.dirty: set[str] = set()

    def view(self, device: str) -> DeviceView:
        if device not in self.devices:
            self.devices[device] = DeviceView(device, self.trace_s)
        return self.devices[device]

    def apply(self, message: DeviceMessage) -> bool:
        """True when the change (a device going online or offline) should be pushed without waiting."""
        self.dirty.add(message.device)
        return self.view(message.device).apply(message)

    def seed(self, known: list[dict[str, Any]], recent: dict[str, list[tuple]]) -> None:
        """Devices from the history (last status, recent events for the trace) so a restarted
        dashboard shows them at once; the broker's retained messages then bring the current state.
        `recent` holds (time, type, track_id, valence, arousal) rows, oldest first."""
        for entry in known:
            view = self.view(entry["device"])
            for row in recent.get(entry["device"], []):
                view.trace_event(*row)
            if entry["status"] is not None:
                view.status, view.status_since, view.boot_id = (entry["status"], entry["status_ts"],
                                                                entry["boot_id"])
            if view.status == "offline":
                view.faces_va.clear()
            view.last_seen = entry["last_event_ts"]

    def snapshot(self) -> list[dict[str, Any]]:
        now = time.time()
        return [view.as_json(now, tail_only=False) for _, view in sorted(self.devices.items())]

    def take_changes(self) -> list[dict[str, Any]]:
        now = time.time()
        changed = [self.devices[d].as_json(now, tail_only=True) for d in sorted(self.dirty)]
        self.dirty.clear()
        return changed
