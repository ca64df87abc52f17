"""Where messages go besides MQTT: a JSON-lines file (or stdout) of every event.

Offline analysis (`--events-out events.jsonl`) and the broker receive the very same event
objects. The file holds events only; state and stats describe the live device and go to MQTT.
A file is appended to, so a service restart keeps the previous run's events (each run's events
carry their own `boot_id`). A reader that goes away (`--events-out - | head -1`) ends the run
quietly; a write that fails (a full disk) is one log line and exit 1.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TextIO

from device.errors import PipeClosedError, SinkError
from device.sinks.event_sink import SinkHealth


class JsonLinesSink:
    """One JSON object per line, flushed per event so `tail -f` and pipes see it at once."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.name = "stdout" if target == "-" else f"events file {target}"
        try:
            self._stream: TextIO | None = (
                sys.stdout if target == "-" else open(target, "a", encoding="utf-8"))  # noqa: SIM115
        except OSError as exc:
            raise SinkError(f"events.out: cannot write events to {target} ({exc.strerror})") from None

    def start(self) -> None:
        """A file is ready as soon as it is open."""

    def publish_event(self, event: dict) -> None:
        if self._stream is None:
            return
        try:
            self._stream.write(json.dumps(event, separators=(",", ":")) + "\n")
            self._stream.flush()
        except BrokenPipeError:
            self._let_go_of_closed_pipe()
            raise PipeClosedError(f"the reader of {self.name} went away") from None
        except OSError as exc:
            self._stream = None  # a half-written line must not be followed by more
            raise SinkError(f"cannot write to {self.name} ({exc.strerror}); events from here on are not "
                            "in the file: free space or fix the path, then restart") from None

    def _let_go_of_closed_pipe(self) -> None:
        """Point stdout at /dev/null, so Python's own flush at exit does not fail on the pipe too."""
        if self._stream is sys.stdout:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        self._stream = None

    def publish_state(self, state: dict) -> None:
        """State is a live view for MQTT subscribers; the file records events only."""

    def publish_stats(self, stats: dict) -> None:
        """Stats go to MQTT; the offline summary is logged at the end instead."""

    def health(self) -> SinkHealth:
        """Every accepted event is on disk (or the run has stopped)."""
        return SinkHealth()

    def close(self, timeout: float) -> None:
        stream, self._stream = self._stream, None
        if stream is not None and stream is not sys.stdout:
            try:
                stream.close()
            except OSError as exc:
                raise SinkError(f"cannot finish writing {self.name} ({exc.strerror})") from None
