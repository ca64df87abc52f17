"""The face gate: a tiny int8 face/not-face classifier that vets a detection before it starts a track.

A detector's false positive (a textured wall, a knot in wood) becomes a track, and a track
becomes `appear`, `heartbeat` and `end` events about a face that is not there. The gate scores the
detection's crop (the same crop, equalization and lookup table as the face model's) and a new
track starts only when P(face) reaches `gate.threshold`. Detections that match a live track are
not scored: the gate costs one invoke per new detection, not one per face per frame. A face the
gate turns away is simply offered again at the next detection round.

It sits between any detector and the tracker (`FaceTracker.update(..., admit=...)`), so it vets
whichever detector's boxes (`detector.kind`) alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.runtime.tflite_model import ModelLoadError, TFLiteModel
from device.vision.box_geometry import Box, crop, expand_and_clip
from device.vision.preprocessing import equalized_face, input_lookup_table

# The model's output order; its card must list exactly these (the card check compares them).
GATE_LABELS: tuple[str, ...] = ("not_face", "face")
FACE_INDEX = GATE_LABELS.index("face")
MIN_CROP = 8  # the pipeline does not classify crops smaller than this either: let them through


def gate_probabilities(model: TFLiteModel, lookup: np.ndarray, face: np.ndarray) -> np.ndarray:
    """(P(not_face), P(face)) for an equalized S x S uint8 crop: one table lookup, one invoke."""
    size = face.shape[0]
    return model.invoke(lookup[face].reshape(1, size, size, 1))[0]


class FaceGate:
    """One gate model; `admits(grey, box)` says whether a new detection may start a track."""

    def __init__(self, path: str | Path, threshold: float, crop_margin: float = 0.0,
                 num_threads: int = 1) -> None:
        self.model = TFLiteModel(path, num_threads=num_threads)
        shape = self.model.input.shape
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 1 or self.model.output.shape[-1] != 2:
            raise ModelLoadError(f"model {path} maps {shape} to {self.model.output.shape}; a face gate maps "
                                 "(1, S, S, 1) grey crops to 2 outputs (not_face, face)")
        self.size = shape[1]
        self.threshold = threshold
        self.crop_margin = crop_margin
        spec = self.model.input
        self._lookup = input_lookup_table(spec.dtype, spec.scale, spec.zero_point)
        self.checked = 0
        self.rejected = 0

    def probabilities(self, grey_crop: np.ndarray) -> np.ndarray:
        """Both outputs for a raw grey crop of any size, preprocessed as the face model's crops are."""
        return gate_probabilities(self.model, self._lookup, equalized_face(grey_crop, self.size))

    def score(self, grey_crop: np.ndarray) -> float:
        """P(face) of a raw grey crop of any size."""
        return float(self.probabilities(grey_crop)[FACE_INDEX])

    def admits(self, grey: np.ndarray, box: Box) -> bool:
        """Score the detection's crop (framed as the pipeline frames faces) against the threshold."""
        height, width = grey.shape
        framed = expand_and_clip(box, self.crop_margin, width, height)
        if framed.w < MIN_CROP or framed.h < MIN_CROP:
            return True
        self.checked += 1
        if self.score(crop(grey, framed)) >= self.threshold:
            return True
        self.rejected += 1
        return False
