"""What every sink offers the pipeline: the three message kinds, its own health, and a close.

Sinks report their health themselves (events waiting, dropped from a full queue, refused by the
broker), so the pipeline's `stats` and the final summary add up what each sink knows instead of
reaching into one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SinkHealth:
    queue_depth: int = 0  # events accepted but not yet delivered
    dropped: int = 0  # oldest events dropped from a full queue
    denied: int = 0  # events the receiver refused (an MQTT 5 broker's ACL says "not authorized")

    def __add__(self, other: SinkHealth) -> SinkHealth:
        return SinkHealth(self.queue_depth + other.queue_depth, self.dropped + other.dropped,
                          self.denied + other.denied)


class EventSink(Protocol):
    name: str

    def start(self) -> None:
        """Begin delivering (connect); the pipeline may publish before this returns."""

    def publish_event(self, event: dict) -> None:
        """Raise SinkError when the event cannot be kept, PipeClosedError when the reader left."""

    def publish_state(self, state: dict) -> None: ...

    def publish_stats(self, stats: dict) -> None: ...

    def health(self) -> SinkHealth: ...

    def close(self, timeout: float) -> None:
        """Deliver what can be delivered within `timeout` seconds, then let go."""
