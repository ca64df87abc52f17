"""The daemon's crop → model-input path equals a reference computation, for the model it loads."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from demo.clip import frames
from device.vision.box_geometry import Box, crop, expand_and_clip
from device.vision.face_classifier import FaceClassifier
from device.vision.preprocessing import equalized_face


def test_crop_to_int8_input_equals_reference(face_model: Path) -> None:
    classifier = FaceClassifier(face_model)
    spec = classifier.model.input
    assert spec.dtype == np.int8
    frame = next(frames(1, guest=None))
    box = expand_and_clip(Box(196, 72, 152, 152), 0.1, 640, 480)
    face = equalized_face(crop(frame, box), classifier.size)
    daemon_input = classifier.input_tensor(face)

    # reference: slice, INTER_AREA resize, equalize, float quantization with the interpreter's own numbers
    reference_crop = frame[72 - 15:72 + 152 + 15, 196 - 15:196 + 152 + 15]
    resized = cv2.resize(reference_crop, (classifier.size, classifier.size), interpolation=cv2.INTER_AREA)
    equalized = cv2.equalizeHist(resized).astype(np.float64)
    reference = np.clip(np.round(equalized / spec.scale + spec.zero_point), -128, 127).astype(np.int8)
    np.testing.assert_array_equal(daemon_input, reference.reshape(spec.shape))
    assert daemon_input.dtype == spec.dtype

    probabilities = classifier.classify(crop(frame, box))
    direct = classifier.model.invoke(reference.reshape(spec.shape))[0]
    np.testing.assert_array_equal(probabilities, direct)
    assert probabilities.shape == (7,) and abs(float(probabilities.sum()) - 1.0) < 0.05
