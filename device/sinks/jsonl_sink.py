"""Where messages go besides MQTT: a JSON-lines file (or stdout) of every event.

Offline analysis (`--events-out events.jsonl`) and the broker receive the very same event
objects. The file holds events only; state and stats describe the live device and go to MQTT.
"""

from __future__ import annotations

import json
import sys
from typing import Protocol, TextIO


class EventSink(Protocol):
    def publish_event(self, event: dict) -> None: ...

    def publish_state(self, state: dict) -> None: ...

    def publish_stats(self, stats: dict) -> None: ...

    def close(self, timeout: float) -> None: ...


class JsonLinesSink:
    """One JSON object per line, flushed per event so `tail -f` and pipes see it at once."""

    def __init__(self, target: str) -> None:
        self.target = target
        try:
            self._stream: TextIO = sys.stdout if target == "-" else open(target, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise OSError(f"cannot write events to {target} ({exc.strerror})") from None

    def publish_event(self, event: dict) -> None:
        self._stream.write(json.dumps(event, separators=(",", ":")) + "\n")
        self._stream.flush()

    def publish_state(self, state: dict) -> None:
        """State is a live view for MQTT subscribers; the file records events only."""

    def publish_stats(self, stats: dict) -> None:
        """Stats go to MQTT; the offline summary is logged at the end instead."""

    def close(self, timeout: float) -> None:
        if self._stream is not sys.stdout:
            self._stream.close()
