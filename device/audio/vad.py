"""Energy-based voice-activity gate: is there speech worth classifying in this window?

A plain level threshold passes a humming fan or a steady tone as "voice". Speech is bursty
(syllables a few times a second, gaps between them), so a frame counts as active only when it is
above an absolute level AND well above the window's own noise floor (a low percentile of its
frame levels); steady noise and tones never rise above their own floor. Silence, steady noise
and tones are therefore not classified, whatever their level.

The absolute level follows the room (`room_threshold_db`): a fixed -50 dBFS never hears a soft
speaker in a quiet room (12 of RAVDESS actors 17-20's 240 clips), a fixed -60 dBFS hears the quiet
babble of a noisy one. So the gate sits a margin above the background of the last few seconds,
between a quiet-room and a noisy-room bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device.audio.log_mel import HOP_LENGTH, SAMPLE_RATE, WIN_LENGTH, as_float_audio, frame_count

FLOOR_PERCENTILE = 10.0
BACKGROUND_S = 8.0  # how far back the room's background is measured (inside the 10 s ring buffer)


@dataclass(frozen=True)
class VadDecision:
    """The gate's verdict on one window, with the numbers behind it (for status and tuning)."""

    voiced: bool
    active_fraction: float  # share of 10 ms frames counted as active
    level_db: float  # 95th percentile frame level, dBFS (RMS of a full-scale sine = -3 dB)
    floor_db: float  # the window's noise floor estimate, dBFS


def frame_levels_db(samples: np.ndarray) -> np.ndarray:
    """RMS level of every 25 ms frame (10 ms hop), in dB relative to full scale.

    From a running sum of squares rather than the frames themselves: the listener measures 8 s of
    background every hop, and this is several times cheaper (equal to the framed mean to 1e-11 dB)."""
    audio = as_float_audio(samples).astype(np.float64)
    starts = np.arange(frame_count(len(audio))) * HOP_LENGTH
    energy = np.concatenate([[0.0], np.cumsum(audio * audio)])
    power = np.maximum(energy[starts + WIN_LENGTH] - energy[starts], 0.0) / WIN_LENGTH
    return 10.0 * np.log10(power + 1e-12)


def room_threshold_db(recent: np.ndarray, quiet_db: float, noisy_db: float, margin_db: float) -> float:
    """The absolute gate for the next window: `margin_db` above the background of `recent` audio
    (the low percentile of its frame levels, i.e. the room between words), never below `quiet_db`
    nor above `noisy_db`. Too little audio to measure a background gives `noisy_db`, the cautious end."""
    levels = frame_levels_db(recent)
    if levels.size == 0:
        return noisy_db
    background = float(np.percentile(levels, FLOOR_PERCENTILE))
    return min(noisy_db, max(quiet_db, background + margin_db))


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
