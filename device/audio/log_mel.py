"""Log-mel spectrogram in plain numpy: the one feature path of training, evaluation and device.

A Raspberry Pi should not need librosa (hundreds of MB and a long first-call JIT), and a single
function used everywhere guarantees that the model sees on the device what it saw in training.
Levels are absolute (dB relative to a full-scale sine), not normalised per clip: loudness is an
emotion cue, and training varies the gain so the model does not depend on one microphone level.
"""

from __future__ import annotations

import functools

import numpy as np

SAMPLE_RATE = 16_000
WIN_LENGTH = 400  # 25 ms
HOP_LENGTH = 160  # 10 ms
N_FFT = 512
N_MELS = 64
F_MIN = 20.0
F_MAX = 8_000.0
FLOOR_DB = -100.0
WINDOW_S = 2.0  # what the voice model classifies at once


def frame_count(num_samples: int) -> int:
    return 0 if num_samples < WIN_LENGTH else 1 + (num_samples - WIN_LENGTH) // HOP_LENGTH


WINDOW_SAMPLES = round(WINDOW_S * SAMPLE_RATE)
WINDOW_FRAMES = frame_count(WINDOW_SAMPLES)

LOG_MEL_DESCRIPTION = (
    f"16 kHz mono audio (int16 scaled to [-1, 1]) -> frames of {WIN_LENGTH} samples (25 ms, periodic "
    f"Hann) every {HOP_LENGTH} samples (10 ms), no centre padding -> |rFFT({N_FFT})|^2 / sum(window)^2 -> "
    f"{N_MELS} triangular mel bands (HTK mel scale, peak 1, {F_MIN:g}-{F_MAX:g} Hz) -> "
    f"10*log10(max(power, 1e-10)) dB (floor {FLOOR_DB:g} dB; a full-scale sine peaks near -6 dB); "
    f"model input = one {WINDOW_S:g} s window = {WINDOW_FRAMES} frames x {N_MELS} bands x 1 (dB values, "
    "quantized with the input scale/zero point for int8); code: device/log_mel.py"
)


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """(N_MELS, N_FFT // 2 + 1) triangles, equally spaced on the mel scale, each peaking at 1."""
    edges = mel_to_hz(np.linspace(hz_to_mel(F_MIN), hz_to_mel(F_MAX), N_MELS + 2))
    bins = np.arange(N_FFT // 2 + 1) * SAMPLE_RATE / N_FFT
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


@functools.lru_cache(maxsize=1)
def analysis_window() -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN_LENGTH) / WIN_LENGTH)).astype(np.float32)


def as_float_audio(samples: np.ndarray) -> np.ndarray:
    """int16 PCM or float audio → float32 in [-1, 1] (int16 full scale = 1.0)."""
    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / 32768.0
    return samples.astype(np.float32, copy=False)


def frames(samples: np.ndarray) -> np.ndarray:
    """(frame_count, WIN_LENGTH) view of 25 ms frames every 10 ms (the VAD's levels share the grid)."""
    audio = as_float_audio(samples)
    count = frame_count(len(audio))
    if count == 0:
        return np.zeros((0, WIN_LENGTH), dtype=np.float32)
    return np.lib.stride_tricks.sliding_window_view(audio, WIN_LENGTH)[::HOP_LENGTH][:count]


def log_mel(samples: np.ndarray) -> np.ndarray:
    """(frames, N_MELS) float32 log-mel energies in dB of 16 kHz mono audio."""
    framed = frames(samples)
    window = analysis_window()
    spectrum = np.fft.rfft(framed * window, n=N_FFT, axis=1)
    power = (spectrum.real ** 2 + spectrum.imag ** 2) / float(window.sum()) ** 2
    mel = power.astype(np.float32) @ mel_filterbank().T
    return (10.0 * np.log10(np.maximum(mel, 10.0 ** (FLOOR_DB / 10.0)))).astype(np.float32)
