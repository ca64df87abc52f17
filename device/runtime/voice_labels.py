"""The eight RAVDESS speech classes and how they land on the seven face classes.

Code order is RAVDESS's emotion field (01..08), so index i is emotion code i + 1 in a file name,
in the voice model's output vector and in an event. Fusion happens over the face classes, so
every voice class maps onto exactly one of them; "calm" has no face counterpart in FER2013 and
is closest to "neutral" (a relaxed, low-arousal expression), so it joins it.
"""

from __future__ import annotations

import numpy as np

from device.runtime.labels import FACE_LABELS

VOICE_LABELS: tuple[str, ...] = (
    "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised",
)

VOICE_TO_FACE: dict[str, str] = {
    "neutral": "neutral",
    "calm": "neutral",
    "happy": "happy",
    "sad": "sad",
    "angry": "angry",
    "fearful": "fear",
    "disgust": "disgust",
    "surprised": "surprise",
}

# VOICE_TO_FACE_MATRIX[i, j] = 1 when voice class i maps onto face class j.
VOICE_TO_FACE_MATRIX = np.zeros((len(VOICE_LABELS), len(FACE_LABELS)), dtype=np.float32)
for _i, _name in enumerate(VOICE_LABELS):
    VOICE_TO_FACE_MATRIX[_i, FACE_LABELS.index(VOICE_TO_FACE[_name])] = 1.0

VOICE_TO_FACE_INDEX: np.ndarray = VOICE_TO_FACE_MATRIX.argmax(axis=1)


def voice_to_face_probabilities(voice_probs: np.ndarray) -> np.ndarray:
    """Sum the voice probabilities of the classes that share a face class (works on batches)."""
    return np.asarray(voice_probs, dtype=np.float32) @ VOICE_TO_FACE_MATRIX
