"""BlazeFace: anchors, decoding and suppression by hand-made numbers; the shipped model on a public-domain
portrait; its card; and the daemon choosing it through detector.kind."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.config import BlazeFaceSection, DetectorSection, load_config
from device.errors import ConfigError, ModelLoadError
from device.vision.blazeface_detector import BlazeFaceDetector, detector_card, fer_square
from device.vision.box_geometry import Box
from device.vision.detector_factory import build_detector
from device.vision.haar_detector import HaarDetector
from device.vision.ssd_anchors import decode_boxes, pairwise_iou, ssd_anchor_centres, weighted_nms
from tests.conftest import ROOT, run_daemon

MODEL = ROOT / "models" / "detectors" / "face_detection_short_range.tflite"
SHORT_RANGE = ((8, 16, 16, 16), 2)


def test_anchor_grid_matches_mediapipe_layouts() -> None:
    # short range at its native 128x128: 16x16 cells of 2, then 8x8 cells of 6 (three stride-16 layers)
    anchors = ssd_anchor_centres(128, 128, *SHORT_RANGE)
    assert anchors.shape == (896, 2)
    np.testing.assert_allclose(anchors[0], anchors[1])
    np.testing.assert_allclose(anchors[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(anchors[2], [1.5 / 16, 0.5 / 16])  # x runs fastest
    np.testing.assert_allclose(anchors[512:518], [[0.5 / 8, 0.5 / 8]] * 6)
    np.testing.assert_allclose(anchors[-1], [7.5 / 8, 7.5 / 8])
    # full range: one stride-4 layer, no interpolated anchor
    assert ssd_anchor_centres(192, 192, (4,), 1).shape == (2304, 2)
    # a 320x240 frame: 40x30 cells of 2 + 20x15 cells of 6, as the resized model predicts
    wide = ssd_anchor_centres(320, 240, *SHORT_RANGE)
    assert wide.shape == (40 * 30 * 2 + 20 * 15 * 6, 2)
    np.testing.assert_allclose(wide[2 * 40], [0.5 / 40, 1.5 / 30])  # second row starts after 40 cells


def test_decoding_places_a_box_relative_to_its_anchor() -> None:
    anchors = ssd_anchor_centres(320, 240, *SHORT_RANGE)
    regressors = np.zeros((len(anchors), 16), np.float32)
    logits = np.full(len(anchors), -1000.0, np.float32)  # clipped before the sigmoid: no overflow
    k = 2 * 40 * 10 + 2 * 20  # row 10, column 20 of the stride-8 grid
    regressors[k, :4] = [8, -4, 64, 80]  # dx, dy, w, h in input pixels
    logits[k] = 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        boxes, scores = decode_boxes(regressors, logits, anchors, 320, 240, 0.5)
    cx, cy = 20.5 / 40 * 320 + 8, 10.5 / 30 * 240 - 4
    np.testing.assert_allclose(boxes[0] * [320, 240, 320, 240], [cx - 32, cy - 40, cx + 32, cy + 40],
                               atol=1e-3)
    assert scores == pytest.approx([1 / (1 + np.exp(-2.0))])
    assert len(decode_boxes(regressors, logits, anchors, 320, 240, 0.9)[0]) == 0


def test_weighted_suppression_averages_a_face_and_keeps_separate_faces() -> None:
    boxes = np.array([[0.10, 0.10, 0.30, 0.30], [0.12, 0.10, 0.32, 0.30], [0.60, 0.60, 0.80, 0.80]],
                     np.float32)
    scores = np.array([0.9, 0.6, 0.7], np.float32)
    kept, kept_scores = weighted_nms(boxes, scores, 0.3)
    assert len(kept) == 2
    mean_x0, mean_x1 = (0.9 * 0.10 + 0.6 * 0.12) / 1.5, (0.9 * 0.30 + 0.6 * 0.32) / 1.5
    np.testing.assert_allclose(kept[0], [mean_x0, 0.10, mean_x1, 0.30], atol=1e-6)
    np.testing.assert_allclose(kept[1], boxes[2])
    assert kept_scores.tolist() == pytest.approx([0.9, 0.7])
    empty, empty_scores = weighted_nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.3)
    assert empty.shape == (0, 4) and empty_scores.shape == (0,)
    assert pairwise_iou(boxes[0], boxes[:1])[0] == pytest.approx(1.0)


def test_fer_square_scales_and_shifts_in_box_widths() -> None:
    # a 40x50 box centred at (70, 85) in the small frame, factor 2: 80 px wide in the full frame
    box = np.array([50, 60, 90, 110], np.float32)
    assert fer_square(box, 2.0, 1.0, 0.0, 0.0) == Box(100, 130, 80, 80)
    assert fer_square(box, 2.0, 1.5, 0.1, -0.25) == Box(88, 90, 120, 120)  # centre (148, 150)


def portrait_frame(size: int = 200, at: tuple[int, int] = (300, 120)) -> tuple[np.ndarray, Box]:
    """scikit-image's public-domain astronaut: her face (a known square of the picture) scaled so its
    side is `size` px, pasted into a 640x480 grey frame; the frame and that face square."""
    from skimage import data

    grey = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    face_x, face_y, face_side = 170, 72, 108  # her face in the 512x512 picture (BlazeFace's own box)
    scale = size / face_side
    picture = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((480, 640), 128, np.uint8)
    x0, y0 = at[0] - round(face_x * scale), at[1] - round(face_y * scale)
    src = picture[max(0, -y0):480 - y0, max(0, -x0):640 - x0]
    frame[max(0, y0):max(0, y0) + src.shape[0], max(0, x0):max(0, x0) + src.shape[1]] = src
    return frame, Box(at[0], at[1], size, size)


@pytest.mark.parametrize("size", [80, 140, 220])
def test_shipped_model_finds_the_portrait_face_at_small_and_large_sizes(size: int) -> None:
    detector = BlazeFaceDetector(DetectorSection(), BlazeFaceSection(model=str(MODEL)))
    frame, face = portrait_frame(size)
    boxes = detector.detect_small(*detector.downscale(frame))

    def centre_error(box: Box) -> float:
        return np.hypot(box.x + box.w / 2 - (face.x + face.w / 2), box.y + box.h / 2 - (face.y + face.h / 2))

    on_face = [box for box in boxes if centre_error(box) < 0.2 * size]
    assert len(on_face) == 1, boxes
    assert 0.7 * size < on_face[0].w < 1.6 * size
    # no face, no box; a second frame size re-shapes the model once and still works
    assert detector.detect_small(*detector.downscale(np.full((480, 640), 128, np.uint8))) == []
    assert detector.detect_small(*detector.downscale(cv2.resize(frame, (320, 240))))


def test_card_must_match_the_file_and_describe_a_detector(tmp_path: Path) -> None:
    card = detector_card(MODEL)
    assert card["license"] == "Apache-2.0" and card["anchors"]["strides"] == [8, 16, 16, 16]
    assert (MODEL.parent / card["license_file"]).is_file()
    model = Path(shutil.copy(MODEL, tmp_path / "detector.tflite"))
    with pytest.raises(ModelLoadError, match="card"):
        BlazeFaceDetector(DetectorSection(), BlazeFaceSection(model=str(model)))
    tampered = {**card, "sha256": "0" * 64}
    model.with_suffix(".json").write_text(json.dumps(tampered))
    with pytest.raises(ModelLoadError, match="not the model this card describes"):
        BlazeFaceDetector(DetectorSection(), BlazeFaceSection(model=str(model)))
    model.with_suffix(".json").write_text(json.dumps({**card, "kind": "face"}))
    with pytest.raises(ModelLoadError, match="face_detector"):
        BlazeFaceDetector(DetectorSection(), BlazeFaceSection(model=str(model)))


def test_detector_kind_picks_the_detector(face_model: Path) -> None:
    base = [("face.model", str(face_model), "--model"), ("mqtt.url", "", "--no-mqtt")]
    haar = load_config(None, env={}, overrides=[*base, ("detector.kind", "haar", "--set")])
    blaze = load_config(None, env={}, overrides=[*base, ("detector.kind", "blazeface", "--set"),
                                                 ("blazeface.model", str(MODEL), "--set")])
    assert isinstance(build_detector(haar), HaarDetector)
    assert isinstance(build_detector(blaze), BlazeFaceDetector)
    with pytest.raises(ConfigError, match=r"blazeface\.min_score.*range 0\.05 to 0\.99"):
        load_config(None, env={}, overrides=[*base, ("blazeface.min_score", "1.5", "--set")])
    with pytest.raises(ConfigError, match=r"detector\.kind"):
        load_config(None, env={}, overrides=[*base, ("detector.kind", "yolo", "--set")])


def test_cli_missing_detector_model_is_one_line_exit_2(face_model: Path) -> None:
    result = run_daemon("--model", str(face_model), "--source", "x.mp4", "--no-mqtt",
                        "--set", "detector.kind=blazeface", "--set", "blazeface.model=/nonexistent/bf.tflite")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("edge-emotion: blazeface.model"), result.stderr


def test_daemon_runs_on_blazeface(demo_video: Path, face_model: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    result = run_daemon("--source", str(demo_video), "--model", str(face_model), "--no-mqtt",
                        "--events-out", str(events), "--set", "detector.kind=blazeface")
    assert result.returncode == 0, result.stderr
    spans: dict[int, dict] = {}
    for line in events.read_text().splitlines():
        event = json.loads(line)
        span = spans.setdefault(event["track_id"], {"box": event["box"]})
        span[event["type"]] = event["frame"]["index"]
    # the panning portrait is one track from the first frame to the last; the guest, who enters at
    # 30% and leaves at 75% of the clip on the right, is another that appears and ends
    assert any(s.get("appear") == 0 and s.get("end") == 179 and s["box"]["w"] > 120 for s in spans.values())
    assert any(45 <= s.get("appear", -1) <= 80 and 115 <= s.get("end", -1) <= 150 and s["box"]["x"] > 450
               for s in spans.values()), spans


def test_a_face_at_the_top_edge_gets_a_box_inside_the_frame() -> None:
    # the FER2013 square reaches above BlazeFace's box: at the top edge it is cut at the frame, so the
    # tracker's face patch and the crop both exist (a box past the edge once left a track without a patch)
    detector = BlazeFaceDetector(DetectorSection(), BlazeFaceSection(model=str(MODEL)))
    frame, _ = portrait_frame(160, at=(300, 4))
    boxes = detector.detect_small(*detector.downscale(frame))
    assert boxes and all(b.x >= 0 and b.y >= 0 and b.x + b.w <= 640 and b.y + b.h <= 480 for b in boxes)
    assert any(b.y == 0 and b.w > b.h for b in boxes)
