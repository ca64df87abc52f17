"""Log-mel windows in, eight RAVDESS emotion probabilities out, through an int8 TFLite model.

The classifier refuses a model whose window length, bands or class count do not match the feature
code here (a model trained on other features would classify garbage without complaint).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.audio.log_mel import N_MELS, WINDOW_FRAMES, WINDOW_S, WINDOW_SAMPLES, log_mel
from device.audio.voice_windows import DEFAULT_HOP_S, clip_score, clip_windows
from device.runtime.tflite_model import ModelLoadError, TensorSpec, TFLiteModel
from device.runtime.voice_labels import VOICE_LABELS


def quantize_input(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Float features → the model's input dtype with its scale and zero point (identity for float)."""
    if spec.dtype.kind == "f" or spec.scale == 0.0:
        return values.astype(spec.dtype)
    info = np.iinfo(spec.dtype)
    return np.clip(np.round(values / spec.scale + spec.zero_point), info.min, info.max).astype(spec.dtype)


class VoiceClassifier:
    """Wraps one voice model; `classify_window` takes the last 2 s of 16 kHz audio."""

    def __init__(self, model: str | Path, num_threads: int = 1) -> None:
        self.model = TFLiteModel(model, num_threads=num_threads)
        shape, out = self.model.input.shape, self.model.output.shape
        if tuple(shape[1:]) != (WINDOW_FRAMES, N_MELS, 1):
            raise ModelLoadError(f"model {model} takes input shape {shape}; a voice model takes "
                                 f"(1, {WINDOW_FRAMES}, {N_MELS}, 1) log-mel windows ({WINDOW_S:g} s)")
        if out[-1] != len(VOICE_LABELS):
            raise ModelLoadError(f"model {model} has {out[-1]} outputs; a voice model has "
                                 f"{len(VOICE_LABELS)} ({', '.join(VOICE_LABELS)})")

    def classify_features(self, features: np.ndarray) -> np.ndarray:
        """(frames, bands) log-mel of one window → 8 probabilities."""
        tensor = quantize_input(features, self.model.input).reshape(self.model.input.shape)
        return self.model.invoke(tensor)[0]

    def classify_window(self, samples: np.ndarray) -> np.ndarray:
        """The last window of `samples` (int16 or float, 16 kHz) → 8 probabilities."""
        if len(samples) < WINDOW_SAMPLES:
            raise ValueError(f"need {WINDOW_SAMPLES} samples for one window, got {len(samples)}")
        return self.classify_features(log_mel(samples[-WINDOW_SAMPLES:]))

    def classify_clip(self, samples: np.ndarray, hop_s: float = DEFAULT_HOP_S,
                      vad_threshold_db: float = -45.0) -> np.ndarray:
        """A whole recording scored as the device would hear it: windows every hop, VAD weighted."""
        windows = clip_windows(samples, hop_s, vad_threshold_db)
        probs = np.stack([self.classify_features(f) for f in windows.features])
        return clip_score(probs, windows.weights)
