"""The messages the daemon emits (event, state, status, stats) and when a track deserves an event.

Every message carries the schema version, its kind, the device id, a boot id (new each start, so
a consumer can tell a restart from a gap) and an ISO-8601 UTC time. Events also carry a per-boot
sequence number: a consumer that sees 41 then 43 knows it missed one. `device/events/event_schema.json`
is the contract; the tests validate every message against it.

Schema version 2 only adds optional objects (`voice` and `fused` on events, `speaker` on state,
`audio` on status and stats), so a consumer written for version 1 reads version 2 messages unchanged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from device.audio.voice_provider import ProviderStatus, VoiceReading
from device.audio.voice_utterance import VoiceUtterance
from device.events.emotion_smoother import TrackEmotion
from device.runtime.model_card_check import ModelIdentity
from device.vision.box_geometry import Box

SCHEMA_VERSION = 2
EVENT_TYPES = ("appear", "change", "end", "heartbeat")


def utc_now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def distribution(labels: tuple[str, ...], probabilities: np.ndarray) -> dict:
    """Dominant class, its confidence and every class's probability, rounded for the wire."""
    best = int(np.argmax(probabilities))
    rounded = rounded_probabilities(labels, probabilities)
    return {"emotion": labels[best], "confidence": rounded[labels[best]], "probabilities": rounded}


def rounded_probabilities(labels: tuple[str, ...], probabilities: np.ndarray) -> dict[str, float]:
    return {label: round(float(p), 4) for label, p in zip(labels, probabilities, strict=True)}


def voice_field(labels: tuple[str, ...], reading: VoiceReading, age_s: float,
                utterance: VoiceUtterance | None = None) -> dict:
    """An event's `voice` object: the VAD verdict always; for a voiced window its emotion and, when
    given, the `utterance` it belongs to (the average of its readings so far)."""
    vad = reading.vad
    field = {"vad": {"voiced": bool(vad.voiced), "active_fraction": round(float(vad.active_fraction), 3),
                     "level_db": round(float(vad.level_db), 1)},
             "age_s": round(age_s, 3)}
    if reading.probabilities is not None:
        field.update(distribution(labels, reading.probabilities))
        if utterance is not None and utterance.readings:
            said = utterance.emotion
            field["utterance"] = {"emotion": labels[said.dominant], "confidence": round(said.confidence, 4),
                                  "readings": utterance.readings}
    return field


def fused_field(labels: tuple[str, ...], emotion: TrackEmotion, method: str, previous: int | None) -> dict:
    """The speaker's `fused` object; `previous_emotion` when this event reports a fused change."""
    field = {"emotion": labels[emotion.dominant], "confidence": round(emotion.confidence, 4),
             "probabilities": rounded_probabilities(labels, emotion.smoothed), "method": method}
    if previous is not None:
        field["previous_emotion"] = labels[previous]
    return field


def speaker_field(labels: tuple[str, ...], track_id: int, emotion: TrackEmotion, method: str) -> dict:
    """`state.speaker`: whose face the voice is fused with now, and their fused emotion."""
    return {"track_id": track_id, "emotion": labels[emotion.dominant],
            "confidence": round(emotion.confidence, 4), "method": method}


def audio_field(status: ProviderStatus, stats: dict | None = None) -> dict:
    """`audio` in status (state only) and stats (with the listener's counters)."""
    field = {"state": status.state, "source": status.source}
    if status.reason:
        field["reason"] = status.reason
    return {**field, **(stats or {})}


def due_event(announced: bool, changed: bool, last_event_s: float, now_s: float,
              heartbeat_s: float) -> str | None:
    """Which event, if any, a classified track owes now: at most one per track per frame."""
    if not announced:
        return "appear"
    if changed:
        return "change"
    if heartbeat_s > 0 and now_s - last_event_s >= heartbeat_s:
        return "heartbeat"
    return None


@dataclass(frozen=True)
class TrackSnapshot:
    """One track as an event or the state reports it."""

    track_id: int
    box: Box
    age_s: float
    emotion: str
    confidence: float
    probabilities: np.ndarray
    valence: float
    arousal: float


@dataclass
class MessageFactory:
    device_id: str
    boot_id: str
    model: ModelIdentity
    labels: tuple[str, ...]
    seq: int = 0

    def _header(self, kind: str) -> dict:
        return {"schema_version": SCHEMA_VERSION, "kind": kind, "device_id": self.device_id,
                "boot_id": self.boot_id, "time": utc_now_iso()}

    def event(self, event_type: str, track: TrackSnapshot, frame: dict, extras: dict | None = None) -> dict:
        """A track event; `extras` adds optional objects (previous_emotion, voice, fused, snapshot)."""
        self.seq += 1
        face = distribution(self.labels, track.probabilities)
        return {**self._header("event"), "type": event_type, "seq": self.seq, "frame": frame,
                "track_id": track.track_id, "track_age_s": round(track.age_s, 3), "box": track.box.as_dict(),
                "emotion": track.emotion, "confidence": round(track.confidence, 4),
                "probabilities": face["probabilities"], "valence": round(track.valence, 4),
                "arousal": round(track.arousal, 4), "model": self.model.as_dict(), **(extras or {})}

    def state(self, tracks: list[TrackSnapshot], speaker: dict | None = None) -> dict:
        """`speaker` (a `speaker_field`) while someone is heard and fused with a face, else absent."""
        message = {**self._header("state"), "faces": len(tracks), "seq": self.seq,
                   "tracks": [{"track_id": t.track_id, "emotion": t.emotion,
                               "confidence": round(t.confidence, 4), "valence": round(t.valence, 4),
                               "arousal": round(t.arousal, 4), "box": t.box.as_dict()} for t in tracks]}
        return {**message, "speaker": speaker} if speaker is not None else message

    def status(self, status: str, version: str, audio: dict | None = None) -> dict:
        """`audio` (when audio is enabled) says whether the daemon is listening or why not."""
        message = {**self._header("status"), "status": status, "version": version,
                   "model": self.model.as_dict()}
        return {**message, "audio": audio} if audio is not None else message

    def stats(self, figures: dict) -> dict:
        return {**self._header("stats"), **figures}
