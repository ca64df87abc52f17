"""Synthetic audio and models for the voice tests: noise, tones, syllable-like bursts, a
RAVDESS-named folder of them, and an untrained voice model in the shipped format.

Nothing here needs ../shared. Real (synthetic) speech comes from espeak-ng, a Debian package the
Makefile installs, through `demo.clip.write_speech`, which the demo uses too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

RATE = 16_000


def tone(seconds: float, freq: float = 440.0, amplitude: float = 0.3, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise(seconds: float, amplitude: float = 0.05, seed: int = 0) -> np.ndarray:
    return (amplitude * np.random.default_rng(seed).standard_normal(int(seconds * RATE))).astype(np.float32)


def syllables(seconds: float, amplitude: float = 0.3, rate_hz: float = 4.0) -> np.ndarray:
    """A harmonic 'voice' switched on and off a few times a second, like syllables."""
    t = np.arange(int(seconds * RATE)) / RATE
    voice = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 8))
    envelope = np.clip(np.sin(2 * np.pi * rate_hz * t), 0, 1)
    return (amplitude * voice / 2 * envelope).astype(np.float32)


def write_ravdess_folder(root: Path, actors: tuple[int, ...], seconds: float = 2.5) -> Path:
    """One clip per emotion per actor, named by the RAVDESS convention; pitch and syllable rate vary
    with the emotion so the clips are not all alike."""
    for actor in actors:
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for emotion in range(1, 9):
            audio = syllables(seconds, amplitude=0.05 + 0.03 * emotion, rate_hz=2.0 + emotion)
            soundfile.write(folder / f"03-01-{emotion:02d}-01-01-01-{actor:02d}.wav", audio, RATE)
    return root


def build_voice_model(out_dir: Path, width: float = 1.25) -> Path:
    """An untrained voice_cnn through the project's converter: the shipped format, random weights."""
    import keras

    from converters.quantize import convert
    from device.audio.log_mel import WINDOW_SAMPLES, log_mel
    from training.architectures import voice_cnn

    keras.utils.set_random_seed(0)
    model = voice_cnn(num_classes=8, width=width)
    calibration = np.stack([log_mel(a[:WINDOW_SAMPLES]) for a in (
        syllables(2.0), syllables(2.0, 0.05) + noise(2.0, 0.003), noise(2.0, 0.01), tone(2.0, 220, 0.2))])
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "voice_test_int8.tflite"
    path.write_bytes(convert(model, calibration[..., None]))
    return path
