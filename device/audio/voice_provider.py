"""The seam where voice joins the face pipeline: what the pipeline needs from the audio side.

The audio side (capture, VAD, log-mel, voice model, fusion) lives in its own modules and runs on
its own thread; the video loop never waits for it. Once per frame the pipeline asks the provider
for its latest reading and, when that is fresh (within fusion.stale_after_s), adds a `voice`
object to events and, with a fuser, a `fused` one to the speaker's events. These protocols are
shaped after `VoiceListener` and `Fusion.fuse(...)`, so those plug in as they are, and tests can
stand in small fakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class VadState(Protocol):
    @property
    def voiced(self) -> bool:
        """Whether the window held enough speech-like activity to be classified."""

    @property
    def active_fraction(self) -> float:
        """Share of the window's 10 ms frames that counted as active."""

    @property
    def level_db(self) -> float:
        """The window's loud level (95th percentile frame level), dBFS."""


class VoiceReading(Protocol):
    @property
    def timestamp(self) -> float:
        """time.time() when the audio window was classified."""

    @property
    def vad(self) -> VadState:
        """The voice-activity verdict on the window."""

    @property
    def probabilities(self) -> np.ndarray | None:
        """Over the provider's labels; None when the window held no voice."""

    @property
    def face_probabilities(self) -> np.ndarray | None:
        """The same mapped onto the face labels, which is what fusion combines."""


class ProviderStatus(Protocol):
    @property
    def state(self) -> str:
        """"running", "finished", "stopped" or "unavailable"."""

    @property
    def reason(self) -> str:
        """Why it is not running, in words for the person reading `status`."""

    @property
    def source(self) -> str:
        """The microphone or file being listened to."""


class VoiceProvider(Protocol):
    def latest(self) -> VoiceReading | None:
        """The newest reading, or None before the first one (or ever, when unavailable); never blocks."""

    @property
    def status(self) -> ProviderStatus: ...

    def stats(self) -> dict:
        """Counters for the `stats` message (windows, voiced windows, classify time, skipped hops)."""

    def stop(self) -> None: ...


class FusedReading(Protocol):
    @property
    def probabilities(self) -> np.ndarray:
        """Over the face labels."""

    @property
    def method(self) -> str:
        """"product" or "bel"."""


class Fuser(Protocol):
    def fuse(self, face: np.ndarray, voice: np.ndarray) -> FusedReading: ...


@dataclass(frozen=True)
class VoiceInput:
    """What the daemon hands the pipeline when audio is on (even when it turned out unavailable,
    so that `status` and `stats` can say so)."""

    provider: VoiceProvider
    labels: tuple[str, ...]
    fuser: Fuser | None = None
