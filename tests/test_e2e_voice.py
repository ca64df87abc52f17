"""The voice end to end: the stream generator, reading the daemon's voice back from its events,
the per-clip scoring, and the daemon itself on a small synthetic stream (no dataset needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile

from benchmarks.e2e.voice_clip import CONDITIONS, VoiceClipSpec, build, face_video, power_db, speech_level_db
from benchmarks.e2e.voice_scorer import (
    clip_answers,
    compare_to_replay,
    read_events,
    readings_from_events,
    replay_readings,
    score_stream,
    start_daemon,
    window_owner,
)
from benchmarks.e2e_voice import main
from device.audio.log_mel import SAMPLE_RATE
from device.config import AudioSection
from device.runtime.voice_labels import VOICE_LABELS
from tests.conftest import ROOT
from tests.voice_fixtures import noise, syllables, tone

SPEC = VoiceClipSpec(seed=5, gap_s=(1.0, 1.0), lead_s=1.0, babble_talkers=2)


def _clips() -> tuple[list[np.ndarray], list[int], list[str], list[np.ndarray]]:
    clips = [syllables(3.0, amplitude=a, rate_hz=r) for a, r in ((0.3, 3.0), (0.05, 5.0), (0.15, 4.0))]
    talkers = [syllables(2.5, amplitude=0.2, rate_hz=6.0) + noise(2.5, 0.01, seed=i) for i in range(3)]
    return clips, [0, 4, 7], ["a.wav", "b.wav", "c.wav"], talkers


def test_streams_hold_the_clips_in_silence_and_the_noise_at_its_snr() -> None:
    clips, labels, names, talkers = _clips()
    streams, timeline = build(clips, labels, names, talkers, SPEC)
    again, _ = build(clips, labels, names, talkers, SPEC)
    assert all(np.array_equal(streams[k], again[k]) for k in streams)  # seeded
    assert set(streams) == {name for name, _, _ in CONDITIONS}
    clean = streams["clean"]
    silent = np.ones(len(clean), bool)
    for clip in timeline["clips"]:
        i = names.index(clip["name"])
        assert clip["label"] == labels[i]
        np.testing.assert_array_equal(clean[clip["start"]:clip["end"]], clips[i])
        silent[clip["start"]:clip["end"]] = False
    assert not clean[silent].any()  # gaps are silence
    reference = timeline["reference_speech_db"]
    assert reference == np.median([speech_level_db(c) for c in clips])
    for condition in timeline["conditions"][1:]:
        noise_only = streams[condition["name"]].astype(np.float64) - clean
        assert abs(power_db(noise_only) - (reference - condition["snr_db"])) < 0.1
        for clip in timeline["clips"]:
            assert abs(clip["snr_db"][condition["name"]] - (clip["speech_db"] - reference
                                                            + condition["snr_db"])) < 1e-9


def test_readings_are_read_back_from_events_by_window() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    events = []
    for k in (0, 1, 2, 4, 5):  # reading 3 never reached an event
        classified = start + 2.0 + 0.5 * k + 0.04
        reading = {"vad": {"voiced": True, "active_fraction": 0.5, "level_db": -20.0 - k},
                   "emotion": "sad", "confidence": 0.9,
                   "probabilities": {label: (0.9 if label == "sad" else 0.1 / 7) for label in VOICE_LABELS}}
        for age in (0.01, 0.21, 0.41):
            wall = classified + age
            events.append({"time": datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds"),
                           "frame": {"media_time_s": wall - start + 0.03},
                           "voice": {**reading, "age_s": age}})
    readings, figures = readings_from_events(events)
    assert sorted(readings) == [0, 1, 2, 4, 5]
    assert [readings[k]["vad"]["level_db"] for k in (0, 4)] == [-20.0, -24.0]
    assert figures["conflicts"] == 0 and figures["alignment_max"] < 0.2  # 0.07 s late: 0.14 hops
    assert readings_from_events([{"frame": {"media_time_s": 1.0}}])[0] == {}


def test_windows_belong_to_the_clip_they_overlap_most() -> None:
    clips = [{"index": 0, "name": "a", "label": 1, "start": 16000, "end": 64000},
             {"index": 1, "name": "b", "label": 2, "start": 80000, "end": 128000}]
    assert window_owner(0, clips) == 0  # 0-2 s: 1 s of clip a (1-4 s)
    assert window_owner(6, clips) == 0  # 3-5 s: a's last second, nothing of b (5-8 s)
    assert window_owner(8, clips) == 1  # 4-6 s: b's first second
    assert window_owner(20, clips) is None
    probs = {label: 0.0 for label in VOICE_LABELS}
    readings = {k: {"vad": {"voiced": True, "active_fraction": 0.5, "level_db": -20.0},
                    "probabilities": {**probs, VOICE_LABELS[1]: 1.0}} for k in range(0, 4)}
    rows = clip_answers(readings, clips, windows=21)
    assert rows[0]["vad_weighted"] == 1 and rows[0]["voiced"] == 4
    assert rows[1]["vad_weighted"] is None  # no voiced window of its own: no answer


def test_the_daemon_on_a_synthetic_stream_reports_what_the_device_code_computes(tmp_path: Path) -> None:
    audio = np.concatenate([np.zeros(SAMPLE_RATE), syllables(3.0), np.zeros(SAMPLE_RATE), tone(2.5, 300, 0.2),
                            np.zeros(SAMPLE_RATE)]).astype(np.float32)
    wav = tmp_path / "stream.wav"
    soundfile.write(wav, audio, SAMPLE_RATE, subtype="PCM_16")
    video = face_video(tmp_path / "face.mp4", len(audio) / SAMPLE_RATE + 1.0, 5.0)
    timeline = {"samples": len(audio),
                "clips": [{"index": 0, "name": "voice", "label": 0, "start": 16000, "end": 64000},
                          {"index": 1, "name": "tone", "label": 1, "start": 80000, "end": 120000}]}
    events_path = tmp_path / "events.jsonl"
    run = start_daemon(wav, video, events_path, tmp_path / "daemon.log",
                       [("audio.model", str(ROOT / "models" / "voice_cnn_int8.tflite")),
                        ("face.model", str(ROOT / "models" / "face_mini_xception_int8.tflite"))])
    assert run.wait(timeout=120) == 0, (tmp_path / "daemon.log").read_text()
    events = read_events(events_path)
    result = score_stream(events, timeline)
    assert result["missing_readings"] == 0 and result["conflicts"] == 0
    assert result["alignment_max"] < 0.3
    assert result["rows"][0]["voiced"] >= 2  # the syllables are heard
    tone_row = result["rows"][1]  # its onset out of silence passes the VAD, the steady middle does not
    assert 0 < tone_row["voiced"] < tone_row["heard"] == tone_row["windows"]

    from device.audio.audio_sources import read_audio_file, to_int16
    from device.audio.voice_classifier import VoiceClassifier

    replay = replay_readings(to_int16(read_audio_file(wav)),
                             VoiceClassifier(ROOT / "models" / "voice_cnn_int8.tflite"), AudioSection())
    check = compare_to_replay(readings_from_events(events)[0], replay)
    assert check["compared"] == len(replay) and check["same_vad"] == check["compared"]
    assert check["same_class"] == check["voiced_compared"] > 0
    assert check["max_probability_diff"] < 1e-3


def test_the_replay_runs_on_the_audio_section_the_settings_give(tmp_path: Path, capsys) -> None:
    from benchmarks.e2e_voice import audio_section

    section = audio_section({"audio.vad_room_margin_db": "15", "audio.hop_s": "0.25", "face.model": "x"})
    assert section.vad_room_margin_db == 15.0 and section.hop_s == 0.25
    assert section.vad_threshold_db == AudioSection().vad_threshold_db
    for bad in ("audio.vad_room_margin_db=loud", "audio.window_s=3"):
        with pytest.raises(SystemExit) as stopped:
            main(["--shared", str(tmp_path), "--replay", "--set", bad])
        assert stopped.value.code == 2
    assert "vad_room_margin_db = 'loud' must be a number" in capsys.readouterr().err


def test_without_the_dataset_the_benchmark_says_so(tmp_path: Path, capsys) -> None:
    assert main(["--shared", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "skipped" in lines[0] and json.loads(lines[-1]) == {}


def test_the_daemons_vad_margin_still_turns_steady_noise_and_tones_away() -> None:
    from benchmarks.e2e.voice_clip import pink_noise
    from device.audio.voice_listener import gate_window

    section = AudioSection()
    rng = np.random.default_rng(0)
    for sound in (noise(8.0, 0.0003), noise(8.0, 0.05), noise(8.0, 0.5), tone(8.0, 440, 0.5),
                  (0.05 * pink_noise(8 * SAMPLE_RATE, rng)).astype(np.float32)):
        assert not gate_window(section, sound).voiced
    speech = np.concatenate([noise(6.0, 0.05), syllables(2.0) + noise(2.0, 0.05, seed=1)])
    assert gate_window(section, speech).voiced
