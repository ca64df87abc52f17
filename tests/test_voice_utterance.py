"""The voice's utterance average: what a subscriber is told the voice says, reading after reading."""

from __future__ import annotations

import numpy as np
import pytest

from device.audio.vad import VadDecision
from device.audio.voice_listener import VoiceReading
from device.audio.voice_utterance import VoiceUtterance
from device.events.emotion_events import voice_field
from device.runtime.voice_labels import VOICE_LABELS

VOICED, SILENT = VadDecision(True, 0.6, -20.0, -60.0), VadDecision(False, 0.0, -70.0, -72.0)


def said(label: str, when: float, peak: float = 0.7) -> VoiceReading:
    probs = np.full(len(VOICE_LABELS), (1.0 - peak) / (len(VOICE_LABELS) - 1))
    probs[VOICE_LABELS.index(label)] = peak
    return VoiceReading(when, VOICED, probs)


def test_one_window_of_another_emotion_does_not_turn_the_utterance() -> None:
    utterance = VoiceUtterance(alpha=0.35, margin=0.1)
    for when, label in enumerate(["angry", "angry", "angry", "sad"]):
        utterance.hear(said(label, when))
    assert VOICE_LABELS[utterance.emotion.dominant] == "angry" and utterance.readings == 4
    utterance.hear(said("sad", 4))
    assert VOICE_LABELS[utterance.emotion.dominant] == "sad"  # the second one does: not stuck either


@pytest.mark.parametrize("alpha", [1.0, 0.35])
def test_the_first_reading_speaks_at_once_and_alpha_one_is_the_latest_window(alpha: float) -> None:
    utterance = VoiceUtterance(alpha, margin=0.0)
    utterance.hear(said("happy", 0.0))
    assert VOICE_LABELS[utterance.emotion.dominant] == "happy"
    utterance.hear(said("fearful", 1.0))
    expected = "fearful" if alpha == 1.0 else "happy"  # a plain mean of two: a tie keeps the current
    assert VOICE_LABELS[utterance.emotion.dominant] == expected


def test_a_reading_seen_on_several_frames_counts_once_and_silence_ends_the_utterance() -> None:
    utterance = VoiceUtterance(alpha=0.35, margin=0.1)
    reading = said("calm", 5.0)
    for _ in range(4):  # the pipeline hands the same reading to every frame until the next hop
        utterance.hear(reading)
    assert utterance.readings == 1
    utterance.hear(VoiceReading(5.5, SILENT))  # an unvoiced reading is not folded in
    assert utterance.readings == 1
    utterance.clear()
    assert utterance.readings == 0 and utterance.emotion.dominant is None
    utterance.hear(said("sad", 6.0))
    assert VOICE_LABELS[utterance.emotion.dominant] == "sad" and utterance.readings == 1


def test_the_voice_object_carries_the_utterance_only_for_a_voiced_window() -> None:
    utterance = VoiceUtterance(alpha=0.35, margin=0.1)
    for when in range(3):
        utterance.hear(said("angry", when))
    latest = said("sad", 3.0)
    utterance.hear(latest)
    field = voice_field(VOICE_LABELS, latest, 0.2, utterance)
    assert field["emotion"] == "sad"  # the window itself, as before
    assert field["utterance"] == {"emotion": "angry", "confidence": round(utterance.emotion.confidence, 4),
                                  "readings": 4}
    assert "utterance" not in voice_field(VOICE_LABELS, VoiceReading(4.0, SILENT), 0.2, utterance)
    assert "utterance" not in voice_field(VOICE_LABELS, latest, 0.2, VoiceUtterance(0.35, 0.1))
