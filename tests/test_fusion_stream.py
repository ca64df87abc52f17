"""`benchmarks.e2e.fusion_stream`: the device's speaker fusion replayed over a stream of windows.

A small stream built here (no dataset): two clips, one of them heard as a window that hesitates
between its true class and another, with silence between them. The counts must follow the
pipeline's rules (silence forgets the speaker; a clip's last voiced window is its verdict)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.e2e.fusion_stream import Tally, fuse_stream, paired_faces, voiced_windows
from device.audio.log_mel import SAMPLE_RATE, WINDOW_SAMPLES
from device.config import FusionSection
from device.fusion.product_rule import Fusion
from device.fusion.speaker_fusion import SpeakerFusion
from device.runtime.labels import FACE_LABELS
from device.runtime.voice_labels import VOICE_LABELS

HOP_S = 0.5
HAPPY, SAD = FACE_LABELS.index("happy"), FACE_LABELS.index("sad")


def voice(label: str, peak: float) -> dict:
    probs = np.full(len(VOICE_LABELS), (1.0 - peak) / (len(VOICE_LABELS) - 1))
    probs[VOICE_LABELS.index(label)] = peak
    return {"vad": {"voiced": True, "active_fraction": 0.5, "level_db": -30.0},
            "probabilities": dict(zip(VOICE_LABELS, probs.tolist(), strict=True))}


SILENT = {"vad": {"voiced": False, "active_fraction": 0.0, "level_db": -70.0}}


def stream() -> list:
    """Clip 0 (sad) under windows 0-5, clip 1 (happy) under windows 8-11, silence between."""
    hop = round(HOP_S * SAMPLE_RATE)
    clips = [{"start": 0, "end": 5 * hop + WINDOW_SAMPLES, "label": VOICE_LABELS.index("sad")},
             {"start": 8 * hop, "end": 11 * hop + WINDOW_SAMPLES, "label": VOICE_LABELS.index("happy")}]
    torn = [voice("sad", 0.6), voice("happy", 0.6)] * 3  # a voice that hesitates window by window
    readings = {k: r for k, r in enumerate(torn)}
    readings.update({6: SILENT, 7: SILENT, 8: voice("happy", 0.8), 9: voice("happy", 0.8),
                     10: voice("happy", 0.8), 11: voice("happy", 0.8)})
    return voiced_windows(readings, clips, 12, HOP_S)


def run(alpha: float) -> Tally:
    windows = stream()
    labels = [SAD, HAPPY]
    faces = np.full((2, len(FACE_LABELS)), 0.05)
    faces[:, [SAD, HAPPY]] = 0.35  # a face torn between the same two classes
    return fuse_stream(windows, labels, faces, SpeakerFusion(Fusion(FusionSection()), 0.1, alpha), HOP_S)


def test_keeping_only_the_latest_reading_flips_with_every_window_and_the_average_holds() -> None:
    latest, averaged = run(1.0), run(0.35)
    assert latest.changes == 5  # sad, happy, sad, happy, sad, happy: every window after the first
    assert averaged.changes < latest.changes
    for tally in (latest, averaged):
        assert tally.readings == 10 and tally.clips == 2  # silent windows fuse nothing
        assert tally.voice_right == 3 + 4 and tally.voice_last_right == 1  # clip 0 ends on "happy"
    assert latest.fused_last_right == 1  # clip 0's last window says happy: wrong
    assert averaged.fused_right >= latest.fused_right


def test_silence_forgets_the_speaker_so_a_new_clip_starts_without_a_change() -> None:
    windows = stream()
    tally = fuse_stream(windows[6:], [SAD, HAPPY], np.eye(len(FACE_LABELS))[[SAD, HAPPY]] * 0.9 + 0.01,
                        SpeakerFusion(Fusion(FusionSection()), 0.1, 0.35), HOP_S)
    assert tally.changes == 0 and tally.readings == 4 and tally.fused_last_right == 1
    figures = tally.figures(HOP_S)
    assert figures["fused_clip_end"] == 1.0 and figures["changes_per_voiced_min"] == 0.0


def test_pairs_each_clip_with_a_face_of_its_class() -> None:
    face_labels = np.array([0, 1, 1, 2, 3, 3, 3])
    probs = np.arange(7, dtype=float)[:, None] * np.ones((1, 3))
    rows = paired_faces(probs, face_labels, [3, 1, 3, 0], np.random.default_rng(0))[:, 0].astype(int)
    assert [face_labels[r] for r in rows] == [3, 1, 3, 0]


@pytest.mark.parametrize("alpha", [1.0, 0.35])
def test_tallies_merge_by_adding(alpha: float) -> None:
    one, both = run(alpha), Tally()
    both.merge(one)
    both.merge(one)
    assert both.readings == 2 * one.readings and both.changes == 2 * one.changes
    assert both.figures(HOP_S)["fused_clip_end"] == one.figures(HOP_S)["fused_clip_end"]
