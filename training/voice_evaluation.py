"""Per-clip voice scores for `training.evaluate`: a .tflite through the device's own feature,
VAD and interpreter code (exactly what the daemon runs), a .keras through Keras on the same
windows. Each clip is scored from its 2 s windows every 0.5 s, weighted by voice activity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.runtime.voice_labels import VOICE_LABELS
from training.data_errors import DataError
from training.ravdess_data import clip_labels, find_clips, read_clip


def voice_clip_predictions(model_path: str | Path, data: str, actors: str
                           ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(true labels, clip probabilities (clips, 8), labels) for the RAVDESS clips of `actors`."""
    model_path = Path(model_path)
    clips = find_clips(data, actors)
    if model_path.suffix == ".tflite":
        from device.audio.voice_classifier import VoiceClassifier

        classifier = VoiceClassifier(model_path, num_threads=1)
        probs = np.stack([classifier.classify_clip(read_clip(c)) for c in clips])
    elif model_path.suffix == ".keras":
        import keras

        from training.voice_task import window_set

        probs = window_set(clips).predict_clips(keras.models.load_model(model_path))
    else:
        raise DataError(f"{model_path}: expected a .tflite or .keras model")
    return clip_labels(clips), probs, VOICE_LABELS
