"""Where the end-to-end gap comes from: the face model on three crops of every face in the e2e clip.

    python -m benchmarks.e2e.gap_sources                                   # the configured face model
    python -m benchmarks.e2e.gap_sources --set face.model=runs/x_int8.tflite

`make e2e` compares what the daemon reports with the model on each face's clean 48x48 image. Between
the two lie the camera (the face pasted into a frame, re-lit, with sensor noise and the codec), the
detector's framing and its jitter, and the tracker and smoothing. This scores, on every frame
of every face segment of the clip `make e2e` built (same spec, same faces):

- clean: the face's own 48x48 image, once per face (make e2e's "model" column);
- true box: the frame cropped at the face's true box (the camera's cost, no framing error);
- detector: the frame cropped at the FER2013 square the daemon's detector makes around the face on
  that frame alone (adds the framing's cost; no tracking or smoothing), on the frames where it
  found the face, and "true box, detected" on those same frames; also the ratio of the square's
  side to the true side and its centre offset in true widths, which should sit at 1 and 0, and
  every crop grouped by that side ratio (columns "side ..."; a face's clean image by its ratio on
  the segment's first frame).

The difference between "detector" and the daemon's accuracy in `make e2e` is what tracking,
smoothing and hysteresis cost or gain. Columns per background, single- and multi-face segments, and
overall; one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2
import numpy as np

from benchmarks.e2e.__main__ import parse_settings
from benchmarks.e2e.clip_generator import ClipSpec, generate
from benchmarks.e2e.run import FER_RELATIVE, publictest_faces
from device.config import load_config
from device.vision.detector_factory import build_detector
from device.vision.face_classifier import FaceClassifier


def face_frames(timeline: dict) -> dict[int, list[dict]]:
    """Frame index -> the face segments shown on it."""
    wanted: dict[int, list[dict]] = defaultdict(list)
    for segment in timeline["segments"]:
        if segment["faces"]:
            for index in range(segment["start_frame"], segment["end_frame"]):
                wanted[index].append(segment)
    return wanted


def nearest(boxes: list, truth: list[int]):
    """The detected box whose centre is nearest the true centre, if that is inside the true box's
    half-width; else None (the detector missed this face on this frame)."""
    x, y, w, h = truth
    best = min(boxes, key=lambda b: abs(b.x + b.w / 2 - x - w / 2) + abs(b.y + b.h / 2 - y - h / 2),
               default=None)
    if best is None or abs(best.x + best.w / 2 - x - w / 2) > w / 2 \
            or abs(best.y + best.h / 2 - y - h / 2) > h / 2:
        return None
    return best


SIDE_GROUPS = ((0.85, "side <0.85"), (1.15, "side 0.85-1.15"), (np.inf, "side >1.15"))


def side_group(ratio: float) -> str:
    """The group of a detection by its square's side over the true side: where the framing loss
    sits (a square much larger than FER2013's photo holds the frame's background around it)."""
    return next(name for limit, name in SIDE_GROUPS if ratio < limit)


def score(clip: Path, timeline: dict, faces: np.ndarray, overrides: list[tuple[str, str]]) -> dict:
    config = load_config(None, env={}, overrides=[(k, v, "--set") for k, v in overrides])
    detector = build_detector(config)
    classifier = FaceClassifier.for_section(config.face)
    wanted = face_frames(timeline)
    counts: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    framing: list[tuple[float, float, float]] = []
    capture = cv2.VideoCapture(str(clip))
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index in wanted:
            grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            small, factor = detector.downscale(grey)
            boxes = detector.detect_small(small, factor)
            for segment in wanted[index]:
                k = index - segment["start_frame"]
                for face in segment["faces"]:
                    x, y, w, h = face["boxes"][k]
                    found = nearest(boxes, face["boxes"][k])
                    crops = {"true box": grey[y:y + h, x:x + w]}
                    if k == 0:  # the clean image once per face, the crops once per frame
                        crops["clean"] = faces[face["row"]]
                    if found is not None:
                        crops["detector"] = grey[found.y:found.y + found.h, found.x:found.x + found.w]
                        framing.append((found.w / w, (found.x + found.w / 2 - x - w / 2) / w,
                                        (found.y + found.h / 2 - y - h / 2) / w))
                    right = {name: int(np.argmax(classifier.classify(crop)) == face["label"])
                             for name, crop in crops.items()}
                    kind = "single" if len(segment["faces"]) == 1 else "multi"
                    groups = [segment["background"], kind, "all"]
                    if found is not None:  # the true box on the frames the detector found: a fair pair
                        right["true box, detected"] = right["true box"]
                        groups.append(side_group(found.w / w))
                    for name, hit in right.items():
                        for group in groups:
                            counts[name][group][0] += 1
                            counts[name][group][1] += hit
        index += 1
    ratios = np.array(framing) if framing else np.zeros((0, 3))
    return {
        "model": config.face.model, "detector": config.detector.kind,
        "accuracy": {name: {group: (right / n, n) for group, (n, right) in sorted(rows.items())}
                     for name, rows in counts.items()},
        "framing": {key: [float(np.percentile(ratios[:, i], q)) for q in (25, 50, 75)]
                    if len(ratios) else None
                    for i, key in enumerate(("side_ratio", "offset_x", "offset_y"))},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--out", type=Path, default=Path("runs/e2e"), help="where make e2e keeps its clip")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    overrides = parse_settings(parser, args.set)
    csv = args.shared / FER_RELATIVE
    if not csv.is_file():
        print(f"gap sources skipped: {csv} not found (FER2013 PublicTest is needed for the clip)")
        return 0
    faces, labels, usable = publictest_faces(csv)
    clip, timeline_path = generate(faces, labels, usable, ClipSpec(), args.out,
                                   f"FER2013 PublicTest {csv.stat().st_size}")
    result = score(clip, json.loads(timeline_path.read_text()), faces, overrides)
    print(f"face model {result['model']}, detector {result['detector']}; n = faces (clean) "
          "or face-frames (crops)")
    groups = sorted({g for rows in result["accuracy"].values() for g in rows})
    print(f"{'crop':20s}" + "".join(f"{g:>18s}" for g in groups))
    for name, rows in result["accuracy"].items():
        cells = [f"{100 * rows[g][0]:5.1f}% (n={rows[g][1]})" if g in rows else "" for g in groups]
        print(f"{name:20s}" + "".join(f"{c:>18s}" for c in cells))
    side, dx, dy = (result["framing"][k] for k in ("side_ratio", "offset_x", "offset_y"))
    if side:
        print(f"detector square / true box: side {side[1]:.3f} (IQR {side[0]:.3f}-{side[2]:.3f}), "
              f"centre offset x {dx[1]:+.3f} (IQR {dx[0]:+.3f}..{dx[2]:+.3f}), "
              f"y {dy[1]:+.3f} (IQR {dy[0]:+.3f}..{dy[2]:+.3f}) true widths")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
