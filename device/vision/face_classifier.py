"""Face crops in, seven emotion probabilities out, through an int8 TFLite model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.config import FaceSection
from device.runtime.tflite_model import ModelLoadError, TFLiteModel
from device.vision.preprocessing import equalized_face, inner_square, input_lookup_table


class FaceClassifier:
    """Wraps one face model; `classify` takes a raw grey crop of any size."""

    def __init__(self, path: str | Path, num_threads: int = 1, flip_tta: bool = False,
                 inner_view: float = 0.0) -> None:
        self.model = TFLiteModel(path, num_threads=num_threads)
        shape = self.model.input.shape
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 1:
            raise ModelLoadError(
                f"model {path} takes input shape {shape}; a face model takes (1, S, S, 1) grey crops"
            )
        self.size = shape[1]
        self.flip_tta = flip_tta
        self.inner_view = inner_view
        spec = self.model.input
        self._lut = input_lookup_table(spec.dtype, spec.scale, spec.zero_point)

    @classmethod
    def for_section(cls, face: FaceSection, num_threads: int = 1) -> FaceClassifier:
        """The classifier as the daemon runs it: the configured model and test-time views."""
        return cls(face.model, num_threads=num_threads, flip_tta=face.flip_tta, inner_view=face.inner_view)

    def input_tensor(self, face: np.ndarray) -> np.ndarray:
        """The model input for an equalized S x S crop: one table lookup, no float arithmetic."""
        return self._lut[face].reshape(1, self.size, self.size, 1)

    def views(self, grey_crop: np.ndarray) -> list[np.ndarray]:
        """The equalized crop and, with `inner_view`, its centred square of that fraction of the side.

        A detector's square varies in size around the framing the model was trained on; the tighter
        view hedges against a square that holds more than the face (docs/device.md, "Inner view").
        """
        views = [equalized_face(grey_crop, self.size)]
        if self.inner_view:
            views.append(equalized_face(inner_square(grey_crop, self.inner_view), self.size))
        return views

    def classify_views(self, views: list[np.ndarray]) -> np.ndarray:
        """The mean of the views' probabilities, each averaged with its mirror's under flip TTA."""
        probs = [self._invoke(view) for view in views]
        if self.flip_tta:
            probs += [self._invoke(view[:, ::-1]) for view in views]
        return np.mean(probs, axis=0)

    def classify(self, grey_crop: np.ndarray) -> np.ndarray:
        """Preprocess a raw grey crop the shared way and classify it."""
        return self.classify_views(self.views(grey_crop))

    def _invoke(self, face: np.ndarray) -> np.ndarray:
        return self.model.invoke(self.input_tensor(face))[0]
