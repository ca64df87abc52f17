"""Face crops in, seven emotion probabilities out, through an int8 TFLite model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.runtime.tflite_model import ModelLoadError, TFLiteModel
from device.vision.preprocessing import equalized_face, input_lookup_table


class FaceClassifier:
    """Wraps one face model; `classify` takes a raw grey crop of any size."""

    def __init__(self, path: str | Path, num_threads: int = 1, flip_tta: bool = False) -> None:
        self.model = TFLiteModel(path, num_threads=num_threads)
        shape = self.model.input.shape
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 1:
            raise ModelLoadError(
                f"model {path} takes input shape {shape}; a face model takes (1, S, S, 1) grey crops"
            )
        self.size = shape[1]
        self.flip_tta = flip_tta
        spec = self.model.input
        self._lut = input_lookup_table(spec.dtype, spec.scale, spec.zero_point)

    def input_tensor(self, face: np.ndarray) -> np.ndarray:
        """The model input for an equalized S x S crop: one table lookup, no float arithmetic."""
        return self._lut[face].reshape(1, self.size, self.size, 1)

    def classify_equalized(self, face: np.ndarray) -> np.ndarray:
        """Classify a crop that has already been through `equalized_face` (S x S uint8)."""
        probs = self.model.invoke(self.input_tensor(face))[0]
        if self.flip_tta:
            probs = 0.5 * (probs + self.model.invoke(self.input_tensor(face[:, ::-1]))[0])
        return probs

    def classify(self, grey_crop: np.ndarray) -> np.ndarray:
        """Preprocess a raw grey crop the shared way and classify it."""
        return self.classify_equalized(equalized_face(grey_crop, self.size))
