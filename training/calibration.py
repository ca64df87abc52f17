"""Representative samples of the training data: class-stratified picks, and the calibration sets
that full-integer quantization measures activation ranges on.

Quantization (`converters/`) and training-side evaluation both draw from here, so the sampling rule
lives in one place and `converters` depends on `training`, never the other way round.
"""

from __future__ import annotations

import numpy as np

from device.vision.preprocessing import equalize_batch
from training.fer_data import load_faces


def stratified_indices(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """About `count` indices with every class represented in proportion (at least a few each)."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = max(4, count // len(classes))
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in classes]
    return rng.permutation(np.concatenate(chosen))


def face_calibration(data: str, usage: str, count: int, seed: int) -> np.ndarray:
    """`count` equalized training faces stratified by class, as (count, 48, 48, 1) model inputs."""
    faces = load_faces(data, usage)
    picked = faces.faces[stratified_indices(faces.labels, count, seed)]
    return equalize_batch(picked)[..., None].astype(np.float32)


def voice_calibration(data: str, actors: str, count: int, seed: int) -> np.ndarray:
    """`count` voiced training windows stratified by class, as (count, frames, bands, 1) model inputs."""
    from training.ravdess_data import find_clips
    from training.voice_task import window_set

    windows = window_set(find_clips(data, actors))
    voiced = windows.weights > 0
    labels = windows.labels[windows.clip_index[voiced]]
    return windows.features[voiced][stratified_indices(labels, count, seed)][..., None].astype(np.float32)
