"""Band-limited resampling in numpy, so a 44.1 or 48 kHz file becomes 16 kHz without scipy.

Windowed-sinc interpolation: each output sample is a Hann-windowed sinc sum over the input
samples around its position, with the cut-off lowered to the output Nyquist frequency when
downsampling (anti-aliasing). Files are short, so the vectorised direct form is fast enough.
"""

from __future__ import annotations

import numpy as np

HALF_TAPS = 32  # input samples on each side of an output position (at the lower of the two rates)


def resample(audio: np.ndarray, rate_in: int, rate_out: int, chunk: int = 2_048) -> np.ndarray:
    """float mono audio at `rate_in` → float32 at `rate_out`.

    Output is computed `chunk` samples at a time: each chunk builds (chunk x taps) float64
    temporaries, and on a Pi a large chunk costs tens of MB of peak memory for no speed gain.
    """
    audio = np.asarray(audio, dtype=np.float64)
    if rate_in == rate_out or audio.size == 0:
        return audio.astype(np.float32)
    cutoff = min(1.0, rate_out / rate_in)  # as a fraction of the input Nyquist frequency
    half = int(np.ceil(HALF_TAPS / cutoff))
    padded = np.pad(audio, half)
    count = int(np.floor(len(audio) * rate_out / rate_in))
    out = np.empty(count, dtype=np.float32)
    offsets = np.arange(-half, half + 1)
    for first in range(0, count, chunk):
        positions = np.arange(first, min(count, first + chunk)) * (rate_in / rate_out)
        nearest = np.floor(positions).astype(np.int64)
        taps = nearest[:, None] + offsets[None, :]
        distance = positions[:, None] - taps
        kernel = cutoff * np.sinc(cutoff * distance) * (0.5 + 0.5 * np.cos(np.pi * distance / (half + 1)))
        out[first: first + len(positions)] = np.sum(kernel * padded[taps + half], axis=1)
    return out
