"""The voice-activity gate on generated silence, noise, tones, bursts and synthetic speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from demo.clip import write_speech
from device.audio.audio_sources import read_audio_file
from device.audio.vad import detect_voice, frame_levels_db, room_threshold_db
from device.audio.voice_listener import gate_window
from device.config import AudioSection
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


def test_the_gate_follows_the_room_between_its_bounds():
    assert room_threshold_db(np.zeros(8 * 16000, np.float32), -60, -50, 20) == -60  # a silent room
    assert room_threshold_db(noise(8.0, 0.05), -60, -50, 20) == -50  # a loud one (-29 dBFS)
    between = room_threshold_db(noise(8.0, 0.0003), -60, -50, 20)  # background about -71 dBFS
    assert -52 < between < -50
    assert room_threshold_db(np.zeros(0, np.float32), -60, -50, 20) == -50  # nothing heard yet: cautious


def test_a_soft_voice_is_heard_in_a_quiet_room_but_not_under_a_noise_bed():
    def after_a_pause(voice: np.ndarray) -> np.ndarray:
        return np.concatenate([np.zeros(6 * 16000, np.float32), voice])

    soft = after_a_pause(syllables(2.0, amplitude=0.004))  # peaks about -55 dBFS: under a fixed -50 gate
    assert gate_window(AudioSection(), soft).voiced
    assert not gate_window(AudioSection(vad_quiet_threshold_db=-50.0), soft).voiced  # the fixed gate
    bed = noise(8.0, 0.0005, seed=3)  # a steady room at -66 dBFS: the gate rises to its -50 bound
    assert not gate_window(AudioSection(), bed + soft).voiced
    assert gate_window(AudioSection(), bed + after_a_pause(syllables(2.0, amplitude=0.05))).voiced
