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


def test_inner_view_is_the_centred_square_averaged_with_the_whole(face_model: Path) -> None:
    frame = next(frames(1, guest=None))
    grey_crop = crop(frame, Box(180, 60, 200, 180))  # not square: each side shrinks by the same fraction
    plain = FaceClassifier(face_model, flip_tta=True)
    hedged = FaceClassifier(face_model, flip_tta=True, inner_view=0.85)

    assert len(plain.views(grey_crop)) == 1
    whole, inner = hedged.views(grey_crop)
    np.testing.assert_array_equal(whole, plain.views(grey_crop)[0])
    # 180 x 200 -> 153 x 170, centred: rows 13..166, columns 15..185
    np.testing.assert_array_equal(inner, equalized_face(grey_crop[13:166, 15:185], hedged.size))

    def invoke(face: np.ndarray) -> np.ndarray:
        return plain.model.invoke(plain.input_tensor(face))[0]

    mirrored_whole = 0.5 * (invoke(whole) + invoke(whole[:, ::-1]))
    np.testing.assert_allclose(plain.classify(grey_crop), mirrored_whole, rtol=1e-6)
    mirrored_inner = 0.5 * (invoke(inner) + invoke(inner[:, ::-1]))
    np.testing.assert_allclose(hedged.classify(grey_crop), 0.5 * (mirrored_whole + mirrored_inner), rtol=1e-6)
    assert not np.allclose(hedged.classify(grey_crop), plain.classify(grey_crop))
