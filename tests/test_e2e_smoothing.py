"""Smoothing reports from a track's first crop and warms up as a plain mean; tracks classified every
n-th frame forget at the same pace per frame of video (issue 13)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from device.config import load_config
from device.events.emotion_smoother import TrackEmotion, alpha_per_classification, classified_on
from device.runtime.labels import FACE_LABELS
from tests.conftest import run_app

HAPPY, SAD = FACE_LABELS.index("happy"), FACE_LABELS.index("sad")


def one_hot(index: int, weight: float) -> np.ndarray:
    p = np.full(len(FACE_LABELS), (1.0 - weight) / (len(FACE_LABELS) - 1))
    p[index] = weight
    return p


def test_the_first_crops_are_averaged_equally_then_the_ema_takes_over() -> None:
    track = TrackEmotion()
    track.update(one_hot(SAD, 0.6), alpha=0.2, margin=0.1)
    assert track.dominant == SAD  # a first event is possible from the first crop
    track.update(one_hot(HAPPY, 0.9), alpha=0.2, margin=0.1)
    assert track.smoothed[HAPPY] == pytest.approx((one_hot(SAD, 0.6)[HAPPY] + 0.9) / 2)
    assert track.dominant == HAPPY  # the mean of two, not 80% of the first crop
    frames = [one_hot(HAPPY, 0.5) for _ in range(3)]
    for frame in frames:
        track.update(frame, alpha=0.2, margin=0.1)
    assert track.frames == 5
    before = track.smoothed.copy()
    track.update(one_hot(SAD, 1.0), alpha=0.2, margin=0.1)  # frame 6: 1/6 < alpha, the EMA proper
    assert track.smoothed == pytest.approx(0.8 * before + 0.2 * one_hot(SAD, 1.0))


def test_alpha_one_follows_the_latest_frame_from_the_start() -> None:
    track = TrackEmotion()
    for index in (HAPPY, SAD):
        track.update(one_hot(index, 0.9), alpha=1.0, margin=0.0)
        assert track.dominant == index


@pytest.mark.parametrize("every_n", [1, 2, 3])
def test_classifying_every_nth_frame_forgets_at_the_per_frame_pace(every_n: int) -> None:
    """Past the warm-up, a step from happy to sad decays by the same factor per frame of video."""
    per_frame, sparse = TrackEmotion(), TrackEmotion()
    for _ in range(30):
        per_frame.update(one_hot(HAPPY, 0.9), alpha=0.15, margin=0.1)
    for _ in range(30 // every_n):
        sparse.update(one_hot(HAPPY, 0.9), alpha=alpha_per_classification(0.15, every_n), margin=0.1)
    for frame in range(1, 13):
        per_frame.update(one_hot(SAD, 0.9), alpha=0.15, margin=0.1)
        if frame % every_n == 0:
            sparse.update(one_hot(SAD, 0.9), alpha=alpha_per_classification(0.15, every_n), margin=0.1)
            assert sparse.smoothed == pytest.approx(per_frame.smoothed, abs=1e-6)
    assert alpha_per_classification(0.15, 1) == pytest.approx(0.15)


def test_tracks_share_the_classified_frames() -> None:
    tracks, every_n = [4, 5, 6], 3
    per_frame = [[t for t in tracks if classified_on(frame, t, every_n)] for frame in range(12)]
    assert all(len(chosen) == 1 for chosen in per_frame)  # never all three faces on one frame
    assert all(sum(t in chosen for chosen in per_frame) == 4 for t in tracks)  # each on every 3rd
    assert all(classified_on(frame, 7, 1) for frame in range(5))


def test_the_daemon_classifies_a_new_track_at_once_then_every_nth_frame(face_model: Path, demo_video: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    from device.vision.face_classifier import FaceClassifier

    calls: list[int] = []
    original = FaceClassifier.classify_views
    monkeypatch.setattr(FaceClassifier, "classify_views",
                        lambda self, views: calls.append(1) or original(self, views))
    face_frames, first_events = {}, {}
    for every_n in ("1", "2"):
        calls.clear()
        events = tmp_path / f"events-{every_n}.jsonl"
        config = load_config(None, env={}, overrides=[
            ("face.model", str(face_model), "--model"), ("source.uri", str(demo_video), "--source"),
            ("mqtt.url", "", "--no-mqtt"), ("events.out", str(events), "--events-out"),
            ("face.every_n_frames", every_n, "--set")])
        _, summary = run_app(config)
        face_frames[every_n] = (summary["faces_per_frame"] * summary["frames"], len(calls))
        first_events[every_n] = [(e["track_id"], e["frame"]["index"], e["probabilities"]) for e in
                                 map(json.loads, events.read_text().splitlines()) if e["type"] == "appear"]
    faces, classified = face_frames["1"]
    assert classified == pytest.approx(faces, abs=1)
    faces, classified = face_frames["2"]
    assert faces / 2 - 2 <= classified <= faces / 2 + 2
    assert first_events["1"] and first_events["1"] == first_events["2"]  # each track's first crop, at once
