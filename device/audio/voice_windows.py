"""How a clip becomes model windows and how window scores become one clip score.

The device classifies the last 2 s every hop; evaluating a recorded clip the same way (2 s
windows every hop, only the voiced ones) keeps the reported accuracy about what the device does.
Window features are slices of the clip's log-mel: frames are aligned to the 10 ms hop, so frame k
of a window starting at sample s is exactly frame s / 160 + k of the whole clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device.audio.log_mel import (
    HOP_LENGTH,
    SAMPLE_RATE,
    WINDOW_FRAMES,
    WINDOW_SAMPLES,
    as_float_audio,
    log_mel,
)
from device.audio.vad import VadDecision, detect_voice

DEFAULT_HOP_S = 0.5


@dataclass
class ClipWindows:
    """Every window of one clip: features (n, frames, bands) and the VAD verdict for each."""

    features: np.ndarray
    vad: list[VadDecision]

    @property
    def weights(self) -> np.ndarray:
        """Each window's say in the clip score: its share of active frames, voiced windows only.

        A clip with no voiced window at all (very quiet) falls back to equal weights, so every
        clip gets a score.
        """
        weights = np.array([d.active_fraction if d.voiced else 0.0 for d in self.vad])
        return weights if weights.sum() > 0 else np.ones(len(self.vad))


def clip_windows(samples: np.ndarray, hop_s: float = DEFAULT_HOP_S,
                 vad_threshold_db: float = -45.0) -> ClipWindows:
    """Cut 16 kHz audio into 2 s windows every `hop_s` (zero-padded when shorter than one)."""
    audio = as_float_audio(samples)
    if len(audio) < WINDOW_SAMPLES:
        audio = np.pad(audio, (0, WINDOW_SAMPLES - len(audio)))
    hop_samples = round(hop_s * SAMPLE_RATE / HOP_LENGTH) * HOP_LENGTH
    starts = range(0, len(audio) - WINDOW_SAMPLES + 1, hop_samples)
    features = log_mel(audio)
    return ClipWindows(
        features=np.stack([features[s // HOP_LENGTH: s // HOP_LENGTH + WINDOW_FRAMES] for s in starts]),
        vad=[detect_voice(audio[s: s + WINDOW_SAMPLES], vad_threshold_db) for s in starts],
    )


def clip_score(window_probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean of the window probabilities: one probability vector for the clip."""
    return np.average(np.asarray(window_probs, dtype=np.float64), axis=0, weights=weights).astype(np.float32)
