"""Face tracker: stable ids, following between detections, tracks ending when a face leaves."""

from __future__ import annotations

import numpy as np
import pytest

from demo.clip import frames
from device.config import DetectorSection, TrackerSection
from device.vision.box_geometry import Box, expand_and_clip, iou, scale_box
from device.vision.face_tracker import FaceTracker, match_boxes
from device.vision.haar_detector import HaarDetector


def test_iou_and_geometry() -> None:
    assert iou(Box(0, 0, 10, 10), Box(0, 0, 10, 10)) == 1.0
    assert iou(Box(0, 0, 10, 10), Box(20, 20, 5, 5)) == 0.0
    assert iou(Box(0, 0, 10, 10), Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert scale_box(Box(10, 20, 30, 40), 2.0) == Box(20, 40, 60, 80)
    assert expand_and_clip(Box(10, 10, 20, 20), 0.5, 35, 100) == Box(0, 0, 35, 40)


def test_match_boxes_prefers_highest_overlap_and_reports_leftovers() -> None:
    tracked = [Box(0, 0, 10, 10), Box(100, 100, 10, 10)]
    detected = [Box(101, 101, 10, 10), Box(300, 300, 10, 10), Box(1, 0, 10, 10)]
    pairs, lost, fresh = match_boxes(tracked, detected, 0.3)
    assert sorted(pairs) == [(0, 2), (1, 0)]
    assert lost == [] and fresh == [1]
    pairs, lost, fresh = match_boxes(tracked, [Box(50, 50, 10, 10)], 0.3)
    assert pairs == [] and lost == [0, 1] and fresh == [0]


def run_tracker(clip: list[np.ndarray], every: int, max_missed: int = 1, follow: bool = True):
    detector = HaarDetector(DetectorSection())
    tracker = FaceTracker(TrackerSection(max_missed=max_missed, follow=follow))
    history, started, ended = [], [], []
    for i, frame in enumerate(clip):
        small, factor = detector.downscale(frame)
        if i % every == 0:
            changes = tracker.update(detector.detect_small(small, factor), small, factor, i / 15)
            started += [(i, t.track_id) for t in changes.started]
            ended += [(i, t.track_id) for t in changes.ended]
        else:
            tracker.follow(small, factor)
        history.append({t.track_id: t.box for t in tracker.tracks})
    return history, started, ended


def test_ids_stay_stable_while_the_camera_pans_and_a_leaving_face_ends_its_track() -> None:
    clip = list(frames(90, guest=(0.3, 0.7)))
    history, started, ended = run_tracker(clip, every=6)
    # the main face keeps id 1 through the whole pan; the guest gets id 2 once and loses it once
    assert all(1 in tracks for tracks in history)
    assert [tid for _, tid in started] == [1, 2]
    assert [tid for _, tid in ended] == [2]
    enter_frame, leave_frame = started[1][0], ended[0][0]
    assert 0.25 * 90 <= enter_frame <= 0.45 * 90
    assert 0.65 * 90 <= leave_frame <= 0.85 * 90
    assert max(max(tracks) for tracks in history) == 2


def test_following_moves_boxes_between_detections() -> None:
    # detections only every 10th frame: the box must still move with the panning face in between
    clip = list(frames(40, guest=None))
    followed, _, _ = run_tracker(clip, every=10, follow=True)
    frozen, _, _ = run_tracker(clip, every=10, follow=False)
    detector = HaarDetector(DetectorSection())
    errors_followed, errors_frozen = [], []
    for i in (4, 8, 14, 18, 24, 28):
        truth = max(detector.detect_small(*detector.downscale(clip[i])), key=lambda b: b.w)
        errors_followed.append(1 - iou(followed[i][1], truth))
        errors_frozen.append(1 - iou(frozen[i][1], truth))
    assert np.mean(errors_followed) < np.mean(errors_frozen)
    assert np.mean(errors_followed) < 0.3


def test_end_all_returns_every_live_track() -> None:
    tracker = FaceTracker(TrackerSection())
    small = np.zeros((120, 160), np.uint8)
    tracker.update([Box(10, 10, 40, 40), Box(100, 10, 40, 40)], small, 2.0, 0.0)
    assert [t.track_id for t in tracker.end_all()] == [1, 2]
    assert tracker.tracks == []


def test_a_track_whose_face_left_a_textured_background_ends_at_the_next_round(monkeypatch) -> None:
    # The tracked box holds the face and a ring of background (as BlazeFace's FER framing does).
    # When the face goes, the background stays: a patch of the whole box would still match it.
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:240, 0:320]
    background = (128 + 100 * np.sign(np.sin(xx / 3.0) * np.sin(yy / 4.0))).astype(np.uint8)
    face = rng.integers(98, 158, (70, 70)).astype(np.uint8)
    with_face = background.copy()
    with_face[115:185, 115:185] = face
    box = Box(100, 100, 100, 100)  # the face fills its middle 70%

    def rounds_survived(inset: float) -> int:
        monkeypatch.setattr("device.vision.face_tracker.TEMPLATE_INSET", inset)
        tracker = FaceTracker(TrackerSection(max_missed=2))
        tracker.update([box], with_face, 1.0, 0.0)
        for n in range(1, 4):
            if tracker.update([], background, 1.0, n / 15).ended:
                return n
        return 4

    assert rounds_survived(0.15) == 1
    assert rounds_survived(0.0) > 1  # the old whole-box patch held on to the background
