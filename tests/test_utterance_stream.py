"""`benchmarks.e2e.utterance_stream`: the device's utterance average and speaker fusion replayed over
a stream of windows.

A small stream built here (no dataset): two clips, the first heard as windows that hesitate between
its true class and another, with silence between them. The counts must follow the pipeline's rules
(silence ends the utterance and forgets the speaker; a clip's last voiced window is its verdict)."""

from __future__ import annotations

import numpy as np

from benchmarks.e2e.utterance_stream import Tally, paired_faces, replay_stream, voiced_windows
from device.audio.log_mel import SAMPLE_RATE, WINDOW_SAMPLES
from device.audio.voice_utterance import VoiceUtterance
from device.config import FusionSection
from device.fusion.product_rule import Fusion
from device.fusion.speaker_fusion import SpeakerFusion
from device.runtime.labels import FACE_LABELS
from device.runtime.voice_labels import VOICE_LABELS

HOP_S = 0.5
HAPPY, SAD = FACE_LABELS.index("happy"), FACE_LABELS.index("sad")
HOP = round(HOP_S * SAMPLE_RATE)
CLIPS = [{"start": 0, "end": 5 * HOP + WINDOW_SAMPLES, "label": VOICE_LABELS.index("sad")},
         {"start": 8 * HOP, "end": 11 * HOP + WINDOW_SAMPLES, "label": VOICE_LABELS.index("happy")}]


def voice(label: str, peak: float) -> dict:
    probs = np.full(len(VOICE_LABELS), (1.0 - peak) / (len(VOICE_LABELS) - 1))
    probs[VOICE_LABELS.index(label)] = peak
    return {"vad": {"voiced": True, "active_fraction": 0.5, "level_db": -30.0},
            "probabilities": dict(zip(VOICE_LABELS, probs.tolist(), strict=True))}


SILENT = {"vad": {"voiced": False, "active_fraction": 0.0, "level_db": -70.0}}


def stream() -> list:
    """Clip 0 (sad) under windows 0-5, heard as sad, happy, sad, happy, sad, happy (a clip's last
    window often hears its tail); silence; clip 1 (happy) under windows 8-11."""
    torn = [voice("sad", 0.6), voice("happy", 0.6)] * 3
    readings = {k: r for k, r in enumerate(torn)}
    readings.update({6: SILENT, 7: SILENT, 8: voice("happy", 0.8), 9: voice("happy", 0.8),
                     10: voice("happy", 0.8), 11: voice("happy", 0.8)})
    return voiced_windows(readings, CLIPS, 12, HOP_S)


def faces_torn() -> np.ndarray:
    faces = np.full((2, len(FACE_LABELS)), 0.05)
    faces[:, [SAD, HAPPY]] = 0.35  # a face torn between the same two classes
    return faces


def run(alpha: float) -> Tally:
    return replay_stream(stream(), CLIPS, faces_torn(), VoiceUtterance(alpha, 0.1),
                         SpeakerFusion(Fusion(FusionSection()), 0.1, alpha), HOP_S)


def test_the_latest_window_flips_with_every_window_and_the_utterance_average_holds() -> None:
    latest, averaged = run(1.0), run(0.35)
    for tally in (latest, averaged):
        assert tally.readings == 10 and tally.clips == 2  # silent windows count for nothing
        assert tally.window.changes == 5 and tally.window.right == 3 + 4  # no setting changes the window
        assert tally.window.last_right == 1  # clip 0's last window says happy: wrong
    assert latest.utterance.changes == latest.fused.changes == 5  # alpha 1: the window, with its ties
    assert averaged.utterance.changes == 0 and averaged.fused.changes <= 1
    assert averaged.utterance.last_right == 2  # clip 0's average stays sad to its end
    assert latest.utterance.last_right == latest.fused.last_right == 1


def test_silence_ends_the_utterance_so_a_new_clip_starts_without_a_change() -> None:
    faces = np.eye(len(FACE_LABELS))[[SAD, HAPPY]] * 0.9 + 0.01
    tally = replay_stream(stream()[6:], CLIPS, faces, VoiceUtterance(0.35, 0.1),
                          SpeakerFusion(Fusion(FusionSection()), 0.1, 0.35), HOP_S)
    assert tally.readings == 4 and tally.clips == 1
    assert tally.utterance.changes == tally.fused.changes == tally.window.changes == 0
    figures = tally.figures(HOP_S)
    assert figures["utterance_clip_end"] == figures["fused_clip_end"] == figures["face"] == 1.0
    assert figures["fused_changes_per_voiced_min"] == 0.0


def test_pairs_each_clip_with_a_face_of_its_class() -> None:
    face_labels = np.array([0, 1, 1, 2, 3, 3, 3])
    probs = np.arange(7, dtype=float)[:, None] * np.ones((1, 3))
    rows = paired_faces(probs, face_labels, [3, 1, 3, 0], np.random.default_rng(0))[:, 0].astype(int)
    assert [face_labels[r] for r in rows] == [3, 1, 3, 0]


def test_tallies_merge_by_adding() -> None:
    one, both = run(0.35), Tally()
    both.merge(one)
    both.merge(one)
    assert both.readings == 2 * one.readings and both.fused.changes == 2 * one.fused.changes
    assert both.utterance.last_right == 2 * one.utterance.last_right
    assert both.figures(HOP_S) == {**one.figures(HOP_S), "readings": 20, "clips": 4}


def test_without_the_datasets_it_says_so_and_returns_no_figures(tmp_path, capsys) -> None:
    from benchmarks.e2e.utterance_stream import held_out_config, run_utterances
    from benchmarks.e2e.voice_clip import VoiceClipSpec

    figures = run_utterances(tmp_path, tmp_path / "out", VoiceClipSpec(), ["clean"], [0.35], 1,
                             held_out_config([]))
    assert figures == {} and "utterances skipped" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()
