"""`python -m review.timeline`: an emotion timeline from the daemon's events file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from review.timeline import main, read_timeline

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def event(boot: str, track: int, t: float, emotion: str, voice: dict | None = None) -> str:
    probabilities = {label: (0.7 if label == emotion else 0.05) for label in LABELS}
    message = {"kind": "event", "boot_id": boot, "track_id": track, "frame": {"media_time_s": t},
               "emotion": emotion, "probabilities": probabilities, "valence": 0.5, "arousal": 0.2}
    return json.dumps({**message, **({"voice": voice} if voice else {})})


def test_reads_the_last_run_of_an_appended_file_with_its_tracks_and_voice() -> None:
    lines = [event("old", 1, 0.0, "sad"), event("new", 1, 0.0, "happy"),
             event("new", 2, 1.0, "neutral", {"emotion": "calm", "confidence": 0.6}),
             event("new", 1, 2.0, "surprise", {"vad": {"voiced": False}})]
    timeline = read_timeline(lines)
    assert list(timeline.tracks) == [1, 2] and timeline.end_s == 2.0
    assert timeline.tracks[1].emotions == ["happy", "surprise"]  # the earlier run's "sad" is not mixed in
    assert timeline.tracks[1].probabilities[0][LABELS.index("happy")] == 0.7
    assert timeline.voice == [(1.0, "calm", 0.6), (2.0, "silent", 0.0)]


def test_writes_a_png_and_refuses_a_file_without_events(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join([event("b", 1, 0.0, "happy"), event("b", 1, 3.0, "sad")]) + "\n")
    out = tmp_path / "timeline.png"
    assert main([str(events), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    (tmp_path / "empty.jsonl").write_text('{"kind": "stats"}\n')
    assert main([str(tmp_path / "empty.jsonl")]) == 2
    assert "no events in the file" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.jsonl")]) == 2
