"""Training faces cropped as the daemon crops them: the equalization is OpenCV's, the border foreign."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
pytest.importorskip("tensorflow")

from training.camera_crops import equalize, sensor, with_foreign_border
from training.face_task import augment_faces, crop_sides


def _faces(count: int, seed: int = 5) -> np.ndarray:
    """Smooth face-like images with a narrow, shifted histogram (what equalization is for)."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0, 1, (count, 6, 6)).astype(np.float32)
    smooth = np.stack([cv2.resize(c, (48, 48), interpolation=cv2.INTER_CUBIC) for c in coarse])
    level = rng.uniform(60, 180, (count, 1, 1))
    return np.clip(level + smooth * rng.uniform(5, 30, (count, 1, 1)), 0, 255).astype(np.uint8)


def test_equalize_is_opencvs_equalize_hist() -> None:
    faces = _faces(40)
    faces[0] = 77  # one level: left as it is
    faces[1, :, :24] = 0  # a large dark area: cdf_min is not one pixel
    faces[2] = np.arange(48 * 48).reshape(48, 48) % 256
    ours = equalize(faces[..., None].astype(np.float32)).numpy()[..., 0]
    theirs = np.stack([cv2.equalizeHist(face) for face in faces])
    assert np.abs(ours - theirs).max() <= 1  # float rounding at exact halves, at most one level
    assert np.mean(ours != theirs) < 0.001
    assert np.all(ours[0] == 77)


def test_camera_crops_equalize_every_face_and_fill_the_uncovered_border_with_foreign_content() -> None:
    tf = pytest.importorskip("tensorflow")
    faces = _faces(64)[..., None].astype(np.float32)
    tf.random.set_seed(1)
    plain = augment_faces(faces, strength=0.0, camera=1e-9).numpy()  # share ~0: mirror + equalize only
    expected = np.stack([cv2.equalizeHist(face[..., 0].astype(np.uint8)) for face in faces])[..., None]
    mirrored = expected[:, :, ::-1]
    assert all(np.abs(out - e).max() <= 1 or np.abs(out - m).max() <= 1
               for out, e, m in zip(plain, expected, mirrored, strict=True))

    camera = augment_faces(faces, camera=1.0).numpy()
    assert all(out.min() == 0 and out.max() == 255 for out in camera)  # equalized after the camera


def test_only_the_chosen_faces_get_a_foreign_border_noise_and_blur() -> None:
    faces = _faces(32)[..., None].astype(np.float32)
    covered = np.ones_like(faces)
    covered[:, :, :8] = 0.0  # the warp uncovered the 8 leftmost columns
    chosen = np.zeros((32, 1, 1, 1), np.float32)
    chosen[:16] = 1.0
    framed = with_foreign_border(faces, covered, chosen).numpy()
    np.testing.assert_array_equal(framed[16:], faces[16:])
    np.testing.assert_array_equal(framed[:16, :, 8:], faces[:16, :, 8:])
    border_change = np.abs(framed[:16, :, :8] - faces[:16, :, :8]).mean(axis=(1, 2, 3))
    assert np.mean(border_change > 1) > 0.8
    noisy = sensor(faces, chosen).numpy()
    np.testing.assert_array_equal(noisy[16:], faces[16:])
    assert np.mean(np.abs(noisy[:16] - faces[:16])) > 0.3



def test_camera_framing_gives_the_chosen_faces_the_detectors_spread_of_crop_sizes() -> None:
    tf = pytest.importorskip("tensorflow")
    tf.random.set_seed(3)
    chosen = tf.constant(np.arange(4000) < 2000)
    plain = crop_sides(4000, 0.12, chosen, 0.0).numpy()
    assert plain.min() >= 1 / 1.12 and plain.max() <= 1 / 0.88  # the uniform zoom for everyone
    framed = np.log(crop_sides(4000, 0.12, chosen, 0.2).numpy())
    assert 0.17 < framed[:2000].std() < 0.2 and abs(np.median(framed[:2000])) < 0.02  # clipped log-normal
    assert np.all(np.abs(framed[2000:]) <= np.log(1 / 0.88) + 1e-6)  # the others keep the uniform zoom
