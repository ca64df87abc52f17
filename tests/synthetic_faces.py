"""Small synthetic FER2013-layout data for tests: no real faces, nothing from the dataset.

Each class gets its own pattern (a bright bar at a class-specific height on a noisy background),
so a tiny model can learn it in a few epochs and its int8 copy can be compared with float.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import cv2
import numpy as np

from device.runtime.labels import FACE_LABELS


def synthetic_faces(per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    faces, labels = [], []
    for label in range(len(FACE_LABELS)):
        for _ in range(per_class):
            face = rng.integers(0, 120, size=(48, 48)).astype(np.uint8)
            top = 3 + 6 * label + int(rng.integers(-1, 2))
            face[top:top + 4, 4:44] = rng.integers(200, 256)
            faces.append(face)
            labels.append(label)
    return np.stack(faces), np.asarray(labels)


def csv_rows(faces: np.ndarray, labels: np.ndarray, usage: str) -> list[str]:
    return [f"{label},{' '.join(map(str, face.ravel()))},{usage}"
            for face, label in zip(faces, labels, strict=True)]


def write_fer_csv(path: Path, train_per_class: int = 20, test_per_class: int = 6, seed: int = 0) -> Path:
    """A FER2013-layout CSV (gzip when the name ends in .gz) with Training and PublicTest rows."""
    rows = ["emotion,pixels,Usage"]
    rows += csv_rows(*synthetic_faces(train_per_class, seed), "Training")
    rows += csv_rows(*synthetic_faces(test_per_class, seed + 1), "PublicTest")
    text = "\n".join(rows) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def write_fer_folder(root: Path, per_class: int = 3, seed: int = 0) -> Path:
    """An image-folder tree root/train/<Class>/*.png with mixed-case class names."""
    faces, labels = synthetic_faces(per_class, seed)
    for i, (face, label) in enumerate(zip(faces, labels, strict=True)):
        folder = root / "train" / FACE_LABELS[label].capitalize()
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i:04d}.png"), face)
    return root
