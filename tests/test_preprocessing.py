"""The shared face preprocessing and the lookup-table quantization."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from device.vision.preprocessing import dequantize, equalized_face, input_lookup_table


def test_equalized_face_resizes_and_equalizes() -> None:
    rng = np.random.default_rng(1)
    crop = rng.integers(60, 90, size=(120, 100)).astype(np.uint8)
    face = equalized_face(crop)
    assert face.shape == (48, 48) and face.dtype == np.uint8
    reference = cv2.equalizeHist(cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA))
    np.testing.assert_array_equal(face, reference)
    assert face.max() == 255  # equalization stretches a narrow histogram to the full range


def test_equalized_face_rejects_colour() -> None:
    with pytest.raises(ValueError, match="2-D grey"):
        equalized_face(np.zeros((48, 48, 3), np.uint8))


@pytest.mark.parametrize(("dtype", "scale", "zero_point"),
                         [(np.int8, 1.0, -128), (np.int8, 1 / 127.5, 3), (np.uint8, 0.75, 10)])
def test_lookup_table_matches_reference_quantization(dtype, scale: float, zero_point: int) -> None:
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    lut = input_lookup_table(np.dtype(dtype), scale, zero_point)
    info = np.iinfo(dtype)
    reference = np.clip(np.round(pixels.astype(np.float64) / scale + zero_point), info.min, info.max)
    np.testing.assert_array_equal(lut[pixels], reference.astype(dtype))
    assert lut[pixels].dtype == dtype


def test_int8_unit_scale_is_pixel_minus_128() -> None:
    lut = input_lookup_table(np.dtype(np.int8), 1.0, -128)
    np.testing.assert_array_equal(lut.astype(np.int16), np.arange(256) - 128)


def test_float_model_gets_raw_pixels_and_dequantize_inverts() -> None:
    lut = input_lookup_table(np.dtype(np.float32), 0.0, 0)
    assert lut.dtype == np.float32 and lut[200] == 200.0
    q = np.array([[-128, 0, 127]], np.int8)
    np.testing.assert_allclose(dequantize(q, 1 / 256, -128), [[0.0, 0.5, 255 / 256]])
