"""The voice-activity gate on generated silence, noise, tones, bursts and synthetic speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from demo.clip import write_speech
from device.audio.audio_sources import read_audio_file
from device.audio.vad import detect_voice, frame_levels_db
from tests.voice_fixtures import noise, syllables, tone


def test_digital_silence_is_not_voice():
    decision = detect_voice(np.zeros(32000, dtype=np.float32))
    assert not decision.voiced and decision.active_fraction == 0.0


@pytest.mark.parametrize("amplitude", [0.001, 0.05, 0.5])
def test_steady_noise_is_not_voice_at_any_level(amplitude: float):
    decision = detect_voice(noise(2.0, amplitude))
    assert not decision.voiced
    assert decision.level_db - decision.floor_db < 3  # steady: no burst above its own floor


def test_loud_steady_tone_is_not_voice():
    decision = detect_voice(tone(2.0, 440, 0.5))
    assert decision.level_db > -10
    assert not decision.voiced


def test_syllable_bursts_are_voice_even_over_noise():
    assert detect_voice(syllables(2.0)).voiced
    assert detect_voice(syllables(2.0) + noise(2.0, 0.01)).voiced


def test_bursts_below_the_threshold_are_not_voice():
    quiet = syllables(2.0, amplitude=0.002)  # peaks around -60 dBFS
    assert not detect_voice(quiet, threshold_db=-45.0).voiced
    assert detect_voice(quiet, threshold_db=-70.0).voiced


def test_frame_levels_are_dbfs():
    levels = frame_levels_db(tone(1.0, 1000, 1.0))
    assert np.allclose(levels, 10 * np.log10(0.5), atol=0.05)  # RMS of a full-scale sine: -3 dB


def test_synthetic_speech_is_voice(tmp_path: Path):
    wav = write_speech(tmp_path / "speech.wav")
    if wav is None:
        pytest.skip("espeak-ng is not installed (apt install espeak-ng)")
    speech = read_audio_file(wav)
    assert detect_voice(speech[:32000]).voiced
    assert not detect_voice(0.003 * speech[:32000] / np.abs(speech).max()).voiced
