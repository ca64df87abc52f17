"""Log-mel and resampling against straightforward reference computations."""

from __future__ import annotations

import numpy as np
import pytest

from device.audio.log_mel import (
    F_MAX,
    F_MIN,
    HOP_LENGTH,
    N_FFT,
    N_MELS,
    SAMPLE_RATE,
    WIN_LENGTH,
    WINDOW_FRAMES,
    WINDOW_SAMPLES,
    log_mel,
    mel_filterbank,
)
from device.audio.resample import resample


def reference_log_mel(x: np.ndarray) -> np.ndarray:
    """Textbook definition, one frame and one band at a time: explicit DFT sums, explicit triangles."""
    n = np.arange(WIN_LENGTH)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / WIN_LENGTH)
    k = np.arange(N_FFT // 2 + 1)
    dft = np.exp(-2j * np.pi * np.outer(k, n) / N_FFT)  # zero padding to N_FFT = dropping those terms
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    inv = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    points = [inv(mel(F_MIN) + i * (mel(F_MAX) - mel(F_MIN)) / (N_MELS + 1)) for i in range(N_MELS + 2)]
    freqs = k * SAMPLE_RATE / N_FFT
    out = []
    for start in range(0, len(x) - WIN_LENGTH + 1, HOP_LENGTH):
        power = np.abs(dft @ (x[start: start + WIN_LENGTH] * hann)) ** 2 / hann.sum() ** 2
        row = []
        for b in range(N_MELS):
            lo, mid, hi = points[b], points[b + 1], points[b + 2]
            total = 0.0
            for f, p in zip(freqs, power, strict=True):
                if lo < f <= mid:
                    total += p * (f - lo) / (mid - lo)
                elif mid < f < hi:
                    total += p * (hi - f) / (hi - mid)
            row.append(10 * np.log10(max(total, 1e-10)))
        out.append(row)
    return np.array(out)


def test_log_mel_matches_reference_definition():
    rng = np.random.default_rng(1)
    t = np.arange(int(0.3 * SAMPLE_RATE)) / SAMPLE_RATE
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 3100 * t)
    x = x + 0.01 * rng.standard_normal(len(t))
    ours, ref = log_mel(x.astype(np.float32)), reference_log_mel(x)
    assert ours.shape == ref.shape == (1 + (len(x) - WIN_LENGTH) // HOP_LENGTH, N_MELS)
    assert np.max(np.abs(ours - ref)) < 0.01  # dB


def test_tone_lands_in_its_mel_band_and_levels_are_absolute():
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    spectrum = log_mel(tone).mean(axis=0)
    centres = mel_filterbank().argmax(axis=1) * SAMPLE_RATE / N_FFT
    assert abs(centres[spectrum.argmax()] - 1000) < 100
    quieter = log_mel(0.1 * tone).mean(axis=0)
    above_floor = quieter > -80
    assert above_floor.sum() > 5
    assert np.allclose((spectrum - quieter)[above_floor], 20.0, atol=0.01)  # -20 dB gain = -20 dB per band


def test_int16_input_is_scaled_to_full_scale():
    rng = np.random.default_rng(2)
    pcm = rng.integers(-20000, 20000, SAMPLE_RATE // 2).astype(np.int16)
    assert np.allclose(log_mel(pcm), log_mel(pcm.astype(np.float32) / 32768.0), atol=1e-4)


def test_two_second_window_is_the_model_input():
    assert WINDOW_SAMPLES == 32000
    assert WINDOW_FRAMES == 198
    assert log_mel(np.zeros(WINDOW_SAMPLES, dtype=np.float32)).shape == (WINDOW_FRAMES, N_MELS)
    assert log_mel(np.zeros(100, dtype=np.float32)).shape == (0, N_MELS)


@pytest.mark.parametrize("rate", [48_000, 44_100, 22_050, 8_000])
def test_resample_keeps_in_band_tones_and_removes_aliases(rate: int):
    t = np.arange(2 * rate) / rate
    x = 0.5 * np.sin(2 * np.pi * 1000 * t)
    if rate > SAMPLE_RATE:
        x = x + 0.3 * np.sin(2 * np.pi * 12_000 * t)  # would alias to 4 kHz without the low-pass
    y = resample(x, rate, SAMPLE_RATE)
    assert abs(len(y) - 2 * SAMPLE_RATE) <= 1
    core = y[2000:-2000]
    window = np.hanning(len(core))
    spectrum = np.abs(np.fft.rfft(core * window)) / (window.sum() / 2)
    freqs = np.fft.rfftfreq(len(core), 1 / SAMPLE_RATE)
    assert abs(spectrum[np.abs(freqs - 1000) < 20].max() - 0.5) < 0.01
    assert spectrum[np.abs(freqs - 4000) < 50].max() < 1e-3
