"""A synthetic test and demo clip built from `skimage.data.astronaut()`, a public-domain portrait
that OpenCV's frontal-face cascade detects, and a synthetic sound track spoken by espeak-ng.

The "camera" pans and bobs over an enlarged copy of the portrait, so the face moves through the
frame; a second face (the same face, mirrored and smaller) slides in from the right, stays a
while and slides out again, so tracks appear and end. `extra_faces=2` instead adds two faces
that stay for the whole clip (the three-face benchmark). scikit-image is a dev dependency: the
daemon itself never imports this module.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT = 640, 480
CANVAS = 800  # the portrait is enlarged to this square before the camera crops it
FACE_REGION = (150, 40, 160, 180)  # x, y, w, h in the 512x512 portrait: the face with some margin


def portrait() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)


def guest_face(grey: np.ndarray, height: int = 140) -> np.ndarray:
    """The portrait's face, mirrored and resized: a second person for the tracker."""
    x, y, w, h = FACE_REGION
    face = grey[y:y + h, x:x + w][:, ::-1]
    return cv2.resize(face, (round(w * height / h), height), interpolation=cv2.INTER_AREA)


def _paste(frame: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    h, w = patch.shape
    x0, x1 = max(0, x), min(frame.shape[1], x + w)
    if x1 > x0:
        frame[y:y + h, x0:x1] = patch[:, x0 - x:x1 - x]


def frames(count: int = 180, guest: tuple[float, float] | None = (0.3, 0.75), extra_faces: int = 0,
           moving: bool = True) -> Iterator[np.ndarray]:
    """`count` grey 640x480 frames; `guest` is the (enter, leave) fraction of the clip for the
    second face, None for no guest."""
    grey = portrait()
    canvas = cv2.resize(grey, (CANVAS, CANVAS), interpolation=cv2.INTER_LINEAR)
    face = guest_face(grey)
    for i in range(count):
        t = i / max(count - 1, 1)
        dx = round(80 + 60 * np.sin(2 * np.pi * 1.5 * t)) if moving else 80
        dy = round(30 + 20 * np.sin(2 * np.pi * 2.5 * t)) if moving else 30
        frame = canvas[dy:dy + HEIGHT, dx:dx + WIDTH].copy()
        if guest is not None and guest[0] <= t <= guest[1]:
            # slide in over the first fifth of the stay, out over the last fifth
            stay = (t - guest[0]) / (guest[1] - guest[0])
            inside = min(1.0, stay * 5, (1 - stay) * 5)
            x = round(WIDTH - inside * (face.shape[1] + 50))
            _paste(frame, face, x, 50)
        if extra_faces >= 1:
            _paste(frame, face, 485, 10)
        if extra_faces >= 2:
            _paste(frame, face, 20, 330)
        yield frame


def write_video(path: str | Path, clip: Iterator[np.ndarray], fps: float = 15.0) -> Path:
    """Motion-JPEG in AVI: OpenCV writes and reads it everywhere without external codecs."""
    path = Path(path)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (WIDTH, HEIGHT))
    for frame in clip:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def write_images(folder: str | Path, clip: Iterator[np.ndarray]) -> Path:
    """Lossless PNG sequence, for the image-folder source."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(clip):
        cv2.imwrite(str(folder / f"frame_{i:05d}.png"), frame)
    return folder


SENTENCES = "Kids are talking by the door. Dogs are sitting by the door."  # RAVDESS's two statements
SENTENCES_S = 3.5  # how long espeak-ng takes to say them


def write_speech(path: str | Path, min_seconds: float = 0.0) -> Path | None:
    """The two sentences spoken by espeak-ng into `path` (its native 22.05 kHz WAV), repeated to
    last at least about `min_seconds`; None when espeak-ng is not installed, so callers can go
    without sound."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        return None
    text = " ".join([SENTENCES] * max(1, math.ceil(min_seconds / SENTENCES_S)))
    subprocess.run([binary, "-w", str(path), text], check=True, capture_output=True, timeout=60)
    return Path(path)
