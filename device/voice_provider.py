"""The seam where voice joins the face pipeline, defined here so the pipeline can take it already.

The audio side (capture, VAD, log-mel, voice model, fusion) lives in its own modules and runs on
its own thread; the video loop never waits for it. Per event, the pipeline asks the provider for
its latest reading and, when that is fresh (within fusion.stale_after_s), adds a `voice` object
and, with a fuser, a `fused` one. These protocols are shaped after `VoiceListener.latest()` and
`Fusion.fuse(...)`, so those plug in as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class VoiceReading(Protocol):
    @property
    def timestamp(self) -> float:
        """time.time() when the audio window was classified."""

    @property
    def probabilities(self) -> np.ndarray | None:
        """Over the provider's labels; None when the window held no voice."""

    @property
    def face_probabilities(self) -> np.ndarray | None:
        """The same mapped onto the face labels, which is what fusion combines."""


class VoiceProvider(Protocol):
    def latest(self) -> VoiceReading | None:
        """The newest reading, or None before the first one; never blocks."""


class FusedReading(Protocol):
    @property
    def probabilities(self) -> np.ndarray:
        """Over the face labels."""

    @property
    def method(self) -> str:
        """"product" or "bel" when both modalities were used; anything else means only one was."""


class Fuser(Protocol):
    def fuse(self, face: np.ndarray | None, face_time: float | None, voice: np.ndarray | None,
             voice_time: float | None, now: float) -> FusedReading | None: ...


@dataclass(frozen=True)
class VoiceInput:
    """What the daemon hands the pipeline when audio is on."""

    provider: VoiceProvider
    labels: tuple[str, ...]
    fuser: Fuser | None = None
