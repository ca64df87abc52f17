"""How FER2013's crops frame a face, relative to the daemon's Haar box.

    python -m benchmarks.e2e.framing --usage Training --count 3000
    python -m benchmarks.e2e.framing --usage PublicTest

FER2013's faces were registered by an automatic face detector, so the 48x48 image is a particular
framing around a detector's box. Each face is upscaled to a size the daemon meets (96-240 px),
centred in a 640x480 frame filled with the face's own border grey (context for the detector), and
run through the daemon's own Haar detector (its default settings, or `--set`). For the detection
nearest the image centre, with the image side S and the box (x, y, w, h):

    margin   = (S / w - 1) / 2      the crop_margin whose crop has the image's side
    offset_x = (image centre x - box centre x) / w,  offset_y likewise (positive: right, down)

Medians and quartiles per size and overall; the detection rate per size comes with them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from device.config import load_config
from device.vision.haar_detector import HaarDetector, default_cascade_path

SIZES = (96, 144, 192, 240)
WIDTH, HEIGHT = 640, 480


def place(face: np.ndarray, size: int) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The face upscaled to `size`, centred in a frame of its own border grey; (x, y, size)."""
    border = np.concatenate([face[0], face[-1], face[:, 0], face[:, -1]])
    frame = np.full((HEIGHT, WIDTH), int(np.median(border)), np.uint8)
    x, y = (WIDTH - size) // 2, (HEIGHT - size) // 2
    frame[y:y + size, x:x + size] = cv2.resize(face, (size, size), interpolation=cv2.INTER_LINEAR)
    return frame, (x, y, size)


def measure(faces: np.ndarray, detector: HaarDetector, sizes=SIZES) -> dict[int, np.ndarray]:
    """Per size: rows (margin, offset_x, offset_y) of the faces the detector found."""
    found: dict[int, list[tuple[float, float, float]]] = {size: [] for size in sizes}
    for face in faces:
        for size in sizes:
            frame, (x, y, side) = place(face, size)
            boxes = detector.detect_small(*detector.downscale(frame))
            centre = np.array([x + side / 2, y + side / 2])
            boxes = [b for b in boxes if 0.4 * side <= b.w <= 1.6 * side
                     and np.all(np.abs(np.array([b.x + b.w / 2, b.y + b.h / 2]) - centre) < side / 2)]
            if not boxes:
                continue
            b = min(boxes, key=lambda b: np.hypot(b.x + b.w / 2 - centre[0], b.y + b.h / 2 - centre[1]))
            found[size].append(((side / b.w - 1) / 2, (centre[0] - (b.x + b.w / 2)) / b.w,
                                (centre[1] - (b.y + b.h / 2)) / b.h))
    return {size: np.array(rows).reshape(-1, 3) for size, rows in found.items()}


def describe(name: str, rows: np.ndarray, total: int) -> str:
    if len(rows) == 0:
        return f"{name:<8} found {0:>5}/{total:<5}"
    q = np.percentile(rows, [25, 50, 75], axis=0)
    cells = "  ".join(f"{label} {q[1, i]:+.3f} [{q[0, i]:+.3f}, {q[2, i]:+.3f}]"
                      for i, label in enumerate(("margin", "offset_x", "offset_y")))
    return f"{name:<8} found {len(rows):>5}/{total:<5} ({100 * len(rows) / total:5.1f}%)  {cells}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/fer2013/fer2013.csv.gz"))
    parser.add_argument("--usage", default="Training", choices=("Training", "PublicTest"))
    parser.add_argument("--count", type=int, default=0, help="a seeded sample of this many faces (0: all)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="detector settings (e.g. detector.scale_factor=1.1)")
    args = parser.parse_args(argv)
    from training.fer_data import load_faces

    data = load_faces(args.data, args.usage)
    faces = data.faces[data.faces.reshape(len(data), -1).std(axis=1) >= 5]
    if args.count and args.count < len(faces):
        faces = faces[np.sort(np.random.default_rng(0).choice(len(faces), args.count, replace=False))]
    overrides = [("mqtt.url", "", "--no-mqtt")] + [(*item.split("=", 1), "--set") for item in args.set]
    config = load_config(None, env={}, overrides=overrides)
    cv2.setNumThreads(1)
    section = config.detector
    cascade = Path(section.cascade).name or default_cascade_path().name
    print(f"FER2013 {args.usage}: {len(faces)} faces; Haar {cascade}, detect_width {section.detect_width}, "
          f"scale_factor {section.scale_factor}, min_neighbors {section.min_neighbors}, "
          f"min_size {section.min_size}; 640x480 frame")
    results = measure(faces, HaarDetector(section))
    for size, rows in results.items():
        print(describe(f"{size} px", rows, len(faces)))
    print(describe("all", np.concatenate(list(results.values())), len(faces) * len(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
