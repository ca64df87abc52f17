"""FER2013 loaders for the two public layouts: the Kaggle CSV and image-folder trees.

Both return raw 48x48 uint8 faces and integer labels in FER2013's order; the shared
preprocessing (histogram equalization) is applied by the caller, the same way everywhere.
"""

from __future__ import annotations

import gzip
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from device.runtime.labels import FACE_LABELS
from device.vision.preprocessing import FACE_SIZE
from training.data_errors import DataError

CSV_HEADER = ("emotion", "pixels", "Usage")
PIXELS_PER_FACE = FACE_SIZE * FACE_SIZE
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm"}
FOLDER_ALIASES = {
    **{name: i for i, name in enumerate(FACE_LABELS)},
    "anger": 0, "disgusted": 1, "fearful": 2, "happiness": 3,
    "sadness": 4, "surprised": 5,
}
USAGE_FOLDERS = {"training": ("train", "training"), "publictest": ("test", "val", "validation", "publictest"),
                 "privatetest": ("privatetest",)}


@dataclass
class FaceSet:
    """Faces (N, 48, 48) uint8 and labels (N,) int64, with where they came from."""

    faces: np.ndarray
    labels: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.labels)


def load_faces(path: str | Path, usage: str | None = "Training") -> FaceSet:
    """Load a FER2013 CSV (plain or .gz) or an image-folder tree, selecting one usage/split."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        return load_folder(path, usage)
    return load_csv(path, usage)


def _read_text(path: Path) -> str:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="ascii", newline="") as fh:
                return fh.read()
        return path.read_text(encoding="ascii")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read as a FER2013 CSV ({exc})") from None


def load_csv(path: Path, usage: str | None = "Training") -> FaceSet:
    """Parse the Kaggle layout `emotion,pixels,Usage`; `usage=None` keeps every row."""
    lines = _read_text(path).splitlines()
    if not lines:
        raise DataError(f"{path}: the file is empty; expected the header {','.join(CSV_HEADER)}")
    header = tuple(h.strip() for h in lines[0].split(","))
    if header[:2] != CSV_HEADER[:2]:
        raise DataError(f"{path}, line 1: header is {lines[0]!r}; expected {','.join(CSV_HEADER)}")
    has_usage = len(header) >= 3
    labels: list[int] = []
    pixel_rows: list[str] = []
    line_numbers: list[int] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != len(header):
            raise DataError(f"{path}, line {number}: {len(fields)} fields, expected {len(header)}")
        if usage is not None and has_usage and fields[2].strip().lower() != usage.lower():
            continue
        label = fields[0].strip()
        if not label.isdigit() or int(label) >= len(FACE_LABELS):
            raise DataError(f"{path}, line {number}: emotion {label!r} is not an integer 0-6")
        labels.append(int(label))
        pixel_rows.append(fields[1])
        line_numbers.append(number)
    if not labels:
        wanted = f" with Usage {usage!r}" if usage and has_usage else ""
        raise DataError(f"{path}: no rows{wanted}")
    faces = _parse_pixels(path, pixel_rows, line_numbers)
    return FaceSet(faces, np.asarray(labels, dtype=np.int64), f"{path} [{usage or 'all'}]")


def _parse_pixels(path: Path, rows: list[str], line_numbers: list[int]) -> np.ndarray:
    """Parse all pixel strings in one C-speed pass; on a mismatch, find the guilty line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        flat = np.fromstring(" ".join(rows), dtype=np.int64, sep=" ")
    if flat.size == len(rows) * PIXELS_PER_FACE and flat.min() >= 0 and flat.max() <= 255:
        return flat.astype(np.uint8).reshape(-1, FACE_SIZE, FACE_SIZE)
    for row, number in zip(rows, line_numbers, strict=True):
        tokens = row.split()
        if len(tokens) != PIXELS_PER_FACE:
            raise DataError(
                f"{path}, line {number}: {len(tokens)} pixel values, expected {PIXELS_PER_FACE} (48x48)"
            )
        bad = [t for t in tokens if not t.isdigit() or int(t) > 255]
        if bad:
            raise DataError(f"{path}, line {number}: pixel value {bad[0]!r} is not an integer 0-255")
    raise DataError(f"{path}: pixel values could not be parsed")


def _class_folders(root: Path) -> dict[int, Path]:
    folders = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        key = sub.name.lower()
        if key not in FOLDER_ALIASES:
            raise DataError(
                f"{sub}: unknown class folder {sub.name!r}; expected one of {', '.join(FACE_LABELS)}"
            )
        folders[FOLDER_ALIASES[key]] = sub
    return folders


def _split_folder(root: Path, usage: str | None) -> Path:
    """Pick `train/` or `test/` under `root` when it holds splits rather than classes."""
    subs = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    if not subs or all(name in FOLDER_ALIASES for name in subs):
        return root
    for name in USAGE_FOLDERS.get((usage or "training").lower(), ((usage or "").lower(),)):
        if name in subs:
            return subs[name]
    raise DataError(f"{root}: no folder for usage {usage!r} (found {', '.join(sorted(subs))})")


def load_folder(root: Path, usage: str | None = "Training") -> FaceSet:
    """Load `root/<class>/*.png|jpg` (or `root/train|test/<class>/...`) as 48x48 grey faces."""
    root = _split_folder(root, usage)
    faces: list[np.ndarray] = []
    labels: list[int] = []
    for label, folder in sorted(_class_folders(root).items()):
        for image_path in sorted(folder.iterdir()):
            if image_path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            image = cv2.imread(str(image_path), cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise DataError(f"{image_path}: unreadable image (corrupt, or not an image file)")
            if image.shape != (FACE_SIZE, FACE_SIZE):
                image = cv2.resize(image, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
            faces.append(image)
            labels.append(label)
    if not faces:
        raise DataError(f"{root}: no images found in class folders ({', '.join(FACE_LABELS)})")
    return FaceSet(np.stack(faces), np.asarray(labels, dtype=np.int64), str(root))
