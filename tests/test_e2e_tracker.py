"""Tracks end when their face has gone (issue 13: within 0.5 s, not max_missed rounds later), but
survive a round in which Haar alone misses a face that is still there."""

from __future__ import annotations

import cv2
import numpy as np

from demo.clip import FACE_REGION, portrait
from device.config import TrackerSection
from device.vision.box_geometry import Box
from device.vision.face_tracker import FaceTracker, blend

FACTOR = 2.0  # small frames are half size, as at detect_width 320 for 640x480


def small_frame(with_face: bool, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = np.clip(rng.normal(120, 12, (240, 320)), 0, 255).astype(np.uint8)
    if with_face:
        x, y, w, h = FACE_REGION
        face = cv2.resize(portrait()[y:y + h, x:x + w], (60, 68), interpolation=cv2.INTER_AREA)
        frame[80:148, 130:190] = face
    return frame


def test_a_track_whose_face_left_ends_at_the_next_detection_round() -> None:
    tracker = FaceTracker(TrackerSection(max_missed=2, follow_lost_frames=0))
    box = Box(260, 160, 120, 136)  # full-frame pixels of the face above
    tracker.update([box], small_frame(True, 0), FACTOR, 0.0)
    for i in range(1, 4):
        tracker.follow(small_frame(True, i), FACTOR)
    assert tracker.tracks[0].follow_score > 0.9
    for i in range(4, 8):  # the face has gone: the follower finds nothing like it
        tracker.follow(small_frame(False, i), FACTOR)
    changes = tracker.update([], small_frame(False, 8), FACTOR, 8 / 15)
    assert [t.track_id for t in changes.ended] == [1] and tracker.tracks == []
    # a new face in the same place later gets a new id
    changes = tracker.update([box], small_frame(True, 9), FACTOR, 9 / 15)
    assert [t.track_id for t in changes.started] == [2]


def test_the_follower_ends_a_track_between_rounds_once_its_face_has_gone() -> None:
    tracker = FaceTracker(TrackerSection(max_missed=2, follow_lost_frames=2))
    box = Box(260, 160, 120, 136)
    tracker.update([box], small_frame(True, 0), FACTOR, 0.0)
    for i in range(1, 8):  # a face in view matches on every follow: its track lives on
        assert tracker.follow(small_frame(True, i), FACTOR) == []
    assert tracker.update([], small_frame(True, 8), FACTOR, 8 / 15).ended == []  # a round Haar missed
    assert tracker.follow(small_frame(False, 9), FACTOR) == []  # one weak follow is not enough
    assert [t.track_id for t in tracker.follow(small_frame(False, 10), FACTOR)] == [1]
    assert tracker.tracks == []
    # a detection there at the next round (a false one in the gap, or the next face) starts a new track
    changes = tracker.update([box], small_frame(False, 16), FACTOR, 16 / 15)
    assert [t.track_id for t in changes.started] == [2]


def test_a_face_haar_misses_keeps_its_track_for_max_missed_rounds() -> None:
    tracker = FaceTracker(TrackerSection(max_missed=2))
    box = Box(260, 160, 120, 136)
    tracker.update([box], small_frame(True, 0), FACTOR, 0.0)
    for round_ in (1, 2):
        changes = tracker.update([], small_frame(True, round_), FACTOR, round_ / 15)
        assert changes.ended == [] and tracker.tracks[0].missed == round_
    assert [t.track_id for t in tracker.update([], small_frame(True, 3), FACTOR, 0.2).ended] == [1]


def test_without_following_only_max_missed_ends_a_track() -> None:
    tracker = FaceTracker(TrackerSection(max_missed=1, follow=False))
    tracker.update([Box(260, 160, 120, 136)], small_frame(True, 0), FACTOR, 0.0)
    assert tracker.update([], small_frame(False, 1), FACTOR, 0.1).ended == []
    assert len(tracker.update([], small_frame(False, 2), FACTOR, 0.2).ended) == 1


def test_a_matched_detection_moves_the_box_halfway() -> None:
    assert blend(Box(0, 0, 100, 100), Box(20, 0, 120, 120), 0.5, 0.5) == Box(10, 0, 110, 110)
    assert blend(Box(0, 0, 100, 100), Box(20, 0, 120, 120), 1.0, 1.0) == Box(20, 0, 120, 120)
    tracker = FaceTracker(TrackerSection())
    tracker.update([Box(260, 160, 120, 136)], small_frame(True, 0), FACTOR, 0.0)
    tracker.update([Box(264, 160, 128, 136)], small_frame(True, 1), FACTOR, 0.1)
    assert tracker.tracks[0].box == Box(262, 160, 124, 136)
