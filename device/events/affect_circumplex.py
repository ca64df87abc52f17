"""Valence and arousal from the seven class probabilities, on Russell's circumplex of affect.

Each FER2013 class is placed at the pleasure (valence) and arousal coordinates measured for the
matching English emotion word by Russell & Mehrabian (1977), "Evidence for a three-factor theory
of emotions", J. Research in Personality 11, 273-294 (scale -1..1):

    class      valence  arousal   word rated
    angry       -0.51    +0.59    "angry"
    disgust     -0.60    +0.35    "disgusted"
    fear        -0.64    +0.60    "afraid"
    happy       +0.81    +0.51    "happy"
    sad         -0.63    -0.27    "sad"
    surprise    +0.40    +0.67    "surprised"
    neutral      0.00     0.00    (the origin, by definition)

A face's valence and arousal are the probability-weighted mean of these points, so a confident
"happy" gives about (+0.81, +0.51) and an even spread gives a point near the middle.
"""

from __future__ import annotations

import numpy as np

from device.events.emotion_smoother import normalised
from device.runtime.labels import FACE_LABELS

CIRCUMPLEX: dict[str, tuple[float, float]] = {
    "angry": (-0.51, 0.59),
    "disgust": (-0.60, 0.35),
    "fear": (-0.64, 0.60),
    "happy": (0.81, 0.51),
    "sad": (-0.63, -0.27),
    "surprise": (0.40, 0.67),
    "neutral": (0.0, 0.0),
}


def circumplex_points(labels: tuple[str, ...] = FACE_LABELS) -> np.ndarray:
    """(n_classes, 2) array of (valence, arousal), in the model's label order."""
    return np.array([CIRCUMPLEX[label] for label in labels], dtype=np.float64)


def valence_arousal(probabilities: np.ndarray, points: np.ndarray) -> tuple[float, float]:
    """Probability-weighted mean position; probabilities are renormalised to sum to one."""
    valence, arousal = normalised(probabilities) @ points
    return float(valence), float(arousal)
