"""Per-track smoothing of class probabilities, with hysteresis on the dominant emotion.

A face classifier flickers from frame to frame (lighting, blur, a half-closed eye); an event
stream that followed it would report noise. Each track keeps an exponential moving average of its
probabilities, and its reported emotion only changes when a challenger beats the current one by
a margin, so a 0.41/0.39 tie does not toggle every frame.

A new track reports from its first crop, and its average warms up as a plain mean: frame n weighs
max(alpha, 1/n), so the second crop counts as much as the first (an EMA started at the first
frame would let that one crop dominate for 1/alpha frames), and from frame 1/alpha on it is the
EMA proper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def normalised(probabilities: np.ndarray) -> np.ndarray:
    """Scale to sum to one: dequantized int8 outputs are off by a step or two; all-zero becomes uniform."""
    total = float(probabilities.sum())
    if total <= 0:
        return np.full(len(probabilities), 1.0 / len(probabilities))
    return probabilities / total


def ema(previous: np.ndarray | None, probabilities: np.ndarray, alpha: float) -> np.ndarray:
    """alpha weights the newest frame; the first frame of a track starts the average."""
    if previous is None:
        return probabilities.astype(np.float64)
    return (1.0 - alpha) * previous + alpha * probabilities


def alpha_per_classification(alpha_per_frame: float, every_n_frames: int) -> float:
    """The EMA weight of one classification made every n frames that forgets as fast, per frame of
    video, as `alpha_per_frame` does when every frame is classified: 1 - (1 - alpha)^n. So
    `smoothing.alpha` means the same lag whatever `face.every_n_frames` is."""
    return 1.0 - (1.0 - alpha_per_frame) ** every_n_frames


def classified_on(frame_index: int, track_id: int, every_n_frames: int) -> bool:
    """Whether a track that has been classified before is classified again on this frame: every
    n-th frame, staggered by track id so that n faces share the frames instead of piling onto one."""
    return (frame_index + track_id) % every_n_frames == 0


def dominant_with_hysteresis(smoothed: np.ndarray, current: int | None, margin: float) -> int:
    """Keep `current` unless another class leads it by at least `margin`."""
    best = int(np.argmax(smoothed))
    if current is None or best == current:
        return best
    return best if smoothed[best] >= smoothed[current] + margin else current


@dataclass
class TrackEmotion:
    """What one track currently shows, after smoothing."""

    smoothed: np.ndarray | None = None
    dominant: int | None = None
    frames: int = 0

    def update(self, probabilities: np.ndarray, alpha: float, margin: float) -> int | None:
        """Fold in one frame's probabilities; return the previous dominant class if it changed."""
        self.frames += 1
        self.smoothed = ema(self.smoothed, normalised(probabilities), max(alpha, 1.0 / self.frames))
        previous = self.dominant
        self.dominant = dominant_with_hysteresis(self.smoothed, previous, margin)
        return previous if previous is not None and previous != self.dominant else None

    @property
    def confidence(self) -> float:
        return float(self.smoothed[self.dominant])
