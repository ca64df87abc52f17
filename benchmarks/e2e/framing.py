"""How FER2013's crops frame a face, relative to the daemon's detector box (Haar or BlazeFace).

    python -m benchmarks.e2e.framing --kind haar --usage Training --count 3000
    python -m benchmarks.e2e.framing --kind blazeface --usage Training --count 3000
    python -m benchmarks.e2e.framing --usage PublicTest             # the configured detector.kind

FER2013's faces were registered by an automatic face detector, so the 48x48 image is a particular
framing around a detector's box. Each face is upscaled to a size the daemon meets (96-240 px),
centred in a 640x480 frame filled with the face's own border grey (context for the detector), and
run through the daemon's own detector (its default settings, or `--set`). For the detection
nearest the image centre, with the image side S and the box (x, y, w, h):

    margin   = (S / w - 1) / 2      the crop_margin whose crop has the image's side
    scale    = S / w                the side of the image in box widths (blazeface.framing_scale)
    offset_x = (image centre x - box centre x) / w,  offset_y likewise, also in box widths
    aspect   = h / w

BlazeFace is measured twice: its own box (`raw`: what sets blazeface.framing_*) and the FER2013
square the daemon makes of it with the configured framing (`framed`: margin and offsets near 0
when the framing is right). Medians and quartiles per size and overall, with the detection rate.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from device.config import load_config
from device.vision.blazeface_detector import BlazeFaceDetector
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


FaceBoxes = Callable[[np.ndarray], list[tuple[float, float, float, float]]]
COLUMNS = ("margin", "scale", "offset_x", "offset_y", "aspect")


def measure(faces: np.ndarray, detect: FaceBoxes, sizes=SIZES) -> dict[int, np.ndarray]:
    """Per size: rows (margin, scale, offset_x, offset_y, aspect) of the faces the detector found.

    `detect` maps a frame to full-frame boxes (x, y, w, h)."""
    found: dict[int, list[tuple[float, ...]]] = {size: [] for size in sizes}
    for face in faces:
        for size in sizes:
            frame, (x, y, side) = place(face, size)
            centre = np.array([x + side / 2, y + side / 2])
            boxes = [b for b in detect(frame) if 0.4 * side <= b[2] <= 1.6 * side
                     and np.all(np.abs(np.array([b[0] + b[2] / 2, b[1] + b[3] / 2]) - centre) < side / 2)]
            if not boxes:
                continue
            bx, by, bw, bh = min(boxes, key=lambda b: np.hypot(b[0] + b[2] / 2 - centre[0],
                                                               b[1] + b[3] / 2 - centre[1]))
            found[size].append(((side / bw - 1) / 2, side / bw, (centre[0] - (bx + bw / 2)) / bw,
                                (centre[1] - (by + bh / 2)) / bw, bh / bw))
    return {size: np.array(rows).reshape(-1, len(COLUMNS)) for size, rows in found.items()}


def describe(name: str, rows: np.ndarray, total: int) -> str:
    if len(rows) == 0:
        return f"{name:<8} found {0:>5}/{total:<5}"
    q = np.percentile(rows, [25, 50, 75], axis=0)
    cells = "  ".join(f"{label} {q[1, i]:+.3f} [{q[0, i]:+.3f}, {q[2, i]:+.3f}]"
                      for i, label in enumerate(COLUMNS))
    return f"{name:<8} found {len(rows):>5}/{total:<5} ({100 * len(rows) / total:5.1f}%)  {cells}"


def detectors(config) -> list[tuple[str, FaceBoxes]]:
    """What to measure for the configured detector.kind: (name, frame -> full-frame boxes)."""
    def as_tuples(boxes) -> list[tuple[float, float, float, float]]:
        return [(float(b.x), float(b.y), float(b.w), float(b.h)) for b in boxes]

    if config.detector.kind == "haar":
        haar = HaarDetector(config.detector)
        return [("haar", lambda frame: as_tuples(haar.detect_small(*haar.downscale(frame))))]
    blaze = BlazeFaceDetector(config.detector, config.blazeface)

    def raw(frame: np.ndarray) -> list[tuple[float, float, float, float]]:
        small, factor = blaze.downscale(frame)
        return [(x0 * factor, y0 * factor, (x1 - x0) * factor, (y1 - y0) * factor)
                for x0, y0, x1, y1 in blaze.detect_raw(small)[0].tolist()]

    return [("raw", raw), ("framed", lambda frame: as_tuples(blaze.detect_small(*blaze.downscale(frame))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/fer2013/fer2013.csv.gz"))
    parser.add_argument("--usage", default="Training", choices=("Training", "PublicTest"))
    parser.add_argument("--count", type=int, default=0, help="a seeded sample of this many faces (0: all)")
    parser.add_argument("--kind", choices=("haar", "blazeface"),
                        help="detector.kind (default: as configured)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="detector settings (e.g. detector.scale_factor=1.1)")
    args = parser.parse_args(argv)
    from training.fer_data import load_faces

    data = load_faces(args.data, args.usage)
    faces = data.faces[data.faces.reshape(len(data), -1).std(axis=1) >= 5]
    if args.count and args.count < len(faces):
        faces = faces[np.sort(np.random.default_rng(0).choice(len(faces), args.count, replace=False))]
    overrides = [("mqtt.url", "", "--no-mqtt")] + [(*item.split("=", 1), "--set") for item in args.set]
    if args.kind:
        overrides.append(("detector.kind", args.kind, "--kind"))
    config = load_config(None, env={}, overrides=overrides)
    cv2.setNumThreads(1)
    section = config.detector
    if section.kind == "haar":
        cascade = Path(section.cascade).name or default_cascade_path().name
        settings = (f"Haar {cascade}, detect_width {section.detect_width}, "
                    f"scale_factor {section.scale_factor}, min_neighbors {section.min_neighbors}, "
                    f"min_size {section.min_size}")
    else:
        b = config.blazeface
        settings = (f"BlazeFace {Path(b.model).name}, detect_width {section.detect_width}, min_score "
                    f"{b.min_score}, nms_iou {b.nms_iou}, framing scale {b.framing_scale} offset "
                    f"({b.framing_offset_x}, {b.framing_offset_y})")
    print(f"FER2013 {args.usage}: {len(faces)} faces; {settings}; 640x480 frame")
    for name, detect in detectors(config):
        results = measure(faces, detect)
        for size, rows in results.items():
            print(describe(f"{size} px", rows, len(faces)))
        print(describe(name, np.concatenate(list(results.values())), len(faces) * len(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
