"""The one face preprocessing path, used by training, evaluation and the device alike.

FER2013 as shared here mixes histogram-equalized Training rows with raw PublicTest rows, and a
camera gives raw pixels; equalizing every 48x48 crop puts all three on the same footing.
Quantization to the model's input dtype goes through a 256-entry lookup table, so a uint8 crop
becomes an int8 (or uint8, or float32) tensor without a float round trip per pixel.
"""

from __future__ import annotations

import cv2
import numpy as np

FACE_SIZE = 48


def equalized_face(grey: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """Resize a grey face crop to `size` x `size` and equalize its histogram (uint8 out)."""
    if grey.ndim != 2:
        raise ValueError(f"expected a 2-D grey crop, got shape {grey.shape}")
    if grey.dtype != np.uint8:
        grey = np.clip(grey, 0, 255).astype(np.uint8)
    if grey.shape != (size, size):
        interpolation = cv2.INTER_AREA if min(grey.shape) >= size else cv2.INTER_LINEAR
        grey = cv2.resize(grey, (size, size), interpolation=interpolation)
    return cv2.equalizeHist(grey)


def inner_square(grey: np.ndarray, fraction: float) -> np.ndarray:
    """The centred part of a crop whose sides are `fraction` of its sides (a tighter framing)."""
    height, width = grey.shape[:2]
    side_y, side_x = max(1, round(height * fraction)), max(1, round(width * fraction))
    top, left = (height - side_y) // 2, (width - side_x) // 2
    return grey[top:top + side_y, left:left + side_x]


def equalize_batch(faces: np.ndarray) -> np.ndarray:
    """Equalize a (N, 48, 48) uint8 stack; used by the data loaders for every split."""
    out = np.empty_like(faces)
    for i, face in enumerate(faces):
        out[i] = cv2.equalizeHist(face)
    return out


def input_lookup_table(dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    """Map every pixel value 0..255 to the model's input value.

    Models take raw pixels (0..255) and normalise inside, so a float model's table is the
    identity and a quantized one's is round(p / scale + zero_point), clipped to the dtype.
    """
    pixels = np.arange(256, dtype=np.float64)
    dtype = np.dtype(dtype)
    if dtype.kind == "f" or scale == 0.0:
        return pixels.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(pixels / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Turn a model's quantized output back into float probabilities."""
    if values.dtype.kind == "f" or scale == 0.0:
        return values.astype(np.float32)
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)
