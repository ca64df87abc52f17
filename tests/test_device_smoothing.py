"""EMA smoothing with hysteresis, and valence/arousal on the circumplex."""

from __future__ import annotations

import numpy as np
import pytest

from device.events.affect_circumplex import CIRCUMPLEX, circumplex_points, valence_arousal
from device.events.emotion_smoother import TrackEmotion, dominant_with_hysteresis, ema, normalised
from device.runtime.labels import FACE_LABELS

HAPPY, SAD, NEUTRAL = FACE_LABELS.index("happy"), FACE_LABELS.index("sad"), FACE_LABELS.index("neutral")


def one_hot(index: int, weight: float = 1.0) -> np.ndarray:
    rest = (1.0 - weight) / (len(FACE_LABELS) - 1)
    p = np.full(len(FACE_LABELS), rest)
    p[index] = weight
    return p


def test_ema_starts_at_first_frame_and_moves_by_alpha() -> None:
    first = one_hot(HAPPY)
    assert np.array_equal(ema(None, first, 0.3), first)
    second = ema(first, one_hot(SAD), 0.25)
    assert second[HAPPY] == pytest.approx(0.75) and second[SAD] == pytest.approx(0.25)


def test_hysteresis_keeps_current_until_a_challenger_leads_by_the_margin() -> None:
    p = np.zeros(7)
    p[HAPPY], p[SAD] = 0.40, 0.45
    assert dominant_with_hysteresis(p, HAPPY, margin=0.1) == HAPPY
    assert dominant_with_hysteresis(p, HAPPY, margin=0.04) == SAD
    assert dominant_with_hysteresis(p, None, margin=0.1) == SAD


def test_alternating_noise_does_not_toggle_the_reported_emotion() -> None:
    track = TrackEmotion()
    changes = 0
    for i in range(60):
        frame = one_hot(HAPPY if i % 2 else SAD, 0.5)  # frame-level winner flips every frame
        changes += track.update(frame, alpha=0.3, margin=0.1) is not None
    assert changes == 0


def test_a_sustained_change_is_reported_once_with_the_previous_emotion() -> None:
    track = TrackEmotion()
    reports = []
    for i in range(40):
        previous = track.update(one_hot(HAPPY if i < 20 else SAD, 0.8), alpha=0.3, margin=0.1)
        if previous is not None:
            reports.append((i, FACE_LABELS[previous], FACE_LABELS[track.dominant]))
    assert len(reports) == 1
    frame, before, after = reports[0]
    assert (before, after) == ("happy", "sad") and 20 < frame < 26
    assert track.confidence == pytest.approx(track.smoothed[SAD])


def test_normalised_sums_to_one_and_handles_zeros() -> None:
    assert normalised(np.array([1.0, 3.0])).tolist() == [0.25, 0.75]
    assert normalised(np.zeros(4)).tolist() == [0.25] * 4


def test_circumplex_places_every_label_on_the_unit_square() -> None:
    assert set(CIRCUMPLEX) == set(FACE_LABELS)
    points = circumplex_points()
    assert points.shape == (7, 2) and np.all(np.abs(points) <= 1)
    assert tuple(points[HAPPY]) == CIRCUMPLEX["happy"]


@pytest.mark.parametrize(("label", "valence_sign", "arousal_sign"),
                         [("happy", 1, 1), ("sad", -1, -1), ("angry", -1, 1), ("surprise", 1, 1)])
def test_confident_faces_land_in_their_quadrant(label: str, valence_sign: int, arousal_sign: int) -> None:
    valence, arousal = valence_arousal(one_hot(FACE_LABELS.index(label), 0.94), circumplex_points())
    assert np.sign(valence) == valence_sign and np.sign(arousal) == arousal_sign


def test_valence_arousal_is_the_probability_weighted_mean() -> None:
    p = np.zeros(7)
    p[HAPPY], p[SAD] = 0.5, 0.5
    valence, arousal = valence_arousal(p * 3, circumplex_points())  # unnormalised input is rescaled
    assert valence == pytest.approx((0.81 - 0.63) / 2)
    assert arousal == pytest.approx((0.51 - 0.27) / 2)
    assert valence_arousal(one_hot(NEUTRAL), circumplex_points()) == (0.0, 0.0)
