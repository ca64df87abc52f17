"""Smoothing reports from a track's first crop and warms up as a plain mean (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest

from device.events.emotion_smoother import TrackEmotion
from device.runtime.labels import FACE_LABELS

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
