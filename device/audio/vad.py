"""Energy-based voice-activity gate: is there speech worth classifying in this window?

A plain level threshold passes a humming fan or a steady tone as "voice". Speech is bursty
(syllables a few times a second, gaps between them), so a frame counts as active only when it is
above an absolute level AND well above the window's own noise floor (a low percentile of its
frame levels); steady noise and tones never rise above their own floor. Silence, steady noise
and tones are therefore not classified, whatever their level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device.audio.log_mel import HOP_LENGTH, SAMPLE_RATE, frames

FLOOR_PERCENTILE = 10.0


@dataclass(frozen=True)
class VadDecision:
    """The gate's verdict on one window, with the numbers behind it (for status and tuning)."""

    voiced: bool
    active_fraction: float  # share of 10 ms frames counted as active
    level_db: float  # 95th percentile frame level, dBFS (RMS of a full-scale sine = -3 dB)
    floor_db: float  # the window's noise floor estimate, dBFS


def frame_levels_db(samples: np.ndarray) -> np.ndarray:
    """RMS level of every 25 ms frame (10 ms hop), in dB relative to full scale."""
    framed = frames(samples).astype(np.float64)
    return 10.0 * np.log10(np.mean(framed ** 2, axis=1) + 1e-12)


def detect_voice(samples: np.ndarray, threshold_db: float = -45.0, margin_db: float = 10.0,
                 min_active_s: float = 0.2) -> VadDecision:
    """Voiced when at least `min_active_s` of frames exceed both `threshold_db` and floor + margin."""
    levels = frame_levels_db(samples)
    if levels.size == 0:
        return VadDecision(False, 0.0, -120.0, -120.0)
    floor = float(np.percentile(levels, FLOOR_PERCENTILE))
    active = (levels > threshold_db) & (levels > floor + margin_db)
    min_frames = max(1, round(min_active_s * SAMPLE_RATE / HOP_LENGTH))
    return VadDecision(
        voiced=bool(active.sum() >= min_frames),
        active_fraction=float(active.mean()),
        level_db=float(np.percentile(levels, 95)),
        floor_db=floor,
    )
