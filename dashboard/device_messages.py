"""What the dashboard reads from the devices' JSON messages, and nothing more.

The contract is the daemon's device/event_schema.json; the dashboard deliberately does not import
the daemon's code, so a device and a dashboard of different versions keep talking as long as the
schema holds. Readers here are lenient: a field that is missing or of the wrong type reads as
None, and the caller decides whether the message is still useful.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

FACE_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
KINDS = ("events", "state", "stats", "status")


class DeviceMessage(NamedTuple):
    """One MQTT message: its device (from the topic), its topic leaf, the parsed JSON, when it came."""

    device: str
    kind: str
    payload: dict[str, Any]
    received_at: float


def number(value: Any) -> float | None:
    """A JSON number as float; None for anything else (booleans included)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def message_time(payload: dict[str, Any], fallback: float) -> float:
    """The message's own `time` (ISO-8601 UTC) as epoch seconds, or `fallback` when unreadable.

    Device time, not arrival time, so events the broker held for us while the dashboard was down
    land where they happened (devices keep their clocks with NTP; Raspberry Pi OS does by default).
    """
    stamp = payload.get("time")
    if isinstance(stamp, str):
        try:
            parsed = dt.datetime.fromisoformat(stamp)
        except ValueError:
            return fallback
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.timestamp()
    return fallback


def iso_time(epoch_s: float) -> str:
    """Epoch seconds as the devices write time: ISO-8601 UTC with milliseconds and a Z."""
    stamp = dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def face_probabilities(value: Any) -> dict[str, float] | None:
    """The 7 face probabilities, or None unless every one is a number."""
    if not isinstance(value, dict):
        return None
    probabilities = {label: number(value.get(label)) for label in FACE_LABELS}
    if any(p is None for p in probabilities.values()):
        return None
    return probabilities  # type: ignore[return-value]
