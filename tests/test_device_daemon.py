"""`python -m device` offline and on the Pi camera path, and the pipeline's voice seam."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest

from device.__main__ import build_pipeline
from device.config import load_config
from device.demo_clip import frames, write_images
from device.labels import FACE_LABELS
from device.voice_provider import VoiceInput
from tests.conftest import ROOT, daemon_command, daemon_env, run_daemon


def test_offline_file_to_stdout_runs_flat_out_and_exits_0(face_model: Path, demo_video: Path,
                                                           schema: dict) -> None:
    started = time.monotonic()
    result = run_daemon("--model", str(face_model), "--source", str(demo_video), "--events-out", "-",
                        "--no-mqtt")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    validator = jsonschema.Draft202012Validator(schema)
    for event in events:
        validator.validate(event)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [(e["type"], e["track_id"]) for e in events if e["type"] != "heartbeat"] == \
        [("appear", 1), ("appear", 2), ("end", 2), ("end", 1)]
    guest = [e for e in events if e["track_id"] == 2]
    assert 0.25 * 12 < guest[0]["frame"]["media_time_s"] < 0.45 * 12  # enters at 30% of the 12 s clip
    assert 0.7 * 12 < guest[-1]["frame"]["media_time_s"] < 0.9 * 12  # leaves at 75%
    assert all("snapshot" not in e for e in events)  # no image leaves the device by default
    assert elapsed < 12  # not paced: a 12 s clip takes less than 12 s
    assert "done: 180 frames" in result.stderr and "2 tracks" in result.stderr


def test_image_folder_source_and_snapshot_option(face_model: Path, tmp_path: Path) -> None:
    folder = write_images(tmp_path / "frames", frames(20, guest=None))
    out = tmp_path / "events.jsonl"
    result = run_daemon("--model", str(face_model), "--source", str(folder), "--events-out", str(out),
                        "--no-mqtt", "--set", "events.snapshot=true")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    appear = events[0]
    assert appear["type"] == "appear" and "snapshot" in appear
    crop = cv2.imdecode(np.frombuffer(base64.b64decode(appear["snapshot"]["data"]), np.uint8),
                        cv2.IMREAD_GRAYSCALE)
    box = appear["box"]
    assert crop.shape[0] >= box["h"] and crop.shape[1] >= box["w"]  # the face crop, with its margin
    assert all("snapshot" not in e for e in events[1:])


def test_pi_camera_path_runs_until_sigterm(face_model: Path, tmp_path: Path) -> None:
    clip = tmp_path / "clip.npy"
    np.save(clip, np.stack(list(frames(30, guest=None))))
    stand_in = ROOT / "tests" / "picamera2_stand_in"
    daemon = subprocess.Popen(daemon_command("--model", str(face_model), "--source", "picamera2", "--no-mqtt",
                                             "--events-out", "-"),
                              cwd=ROOT, env=daemon_env(PYTHONPATH=f"{stand_in}:{ROOT}",
                                                       PICAMERA2_STAND_IN_CLIP=str(clip)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(daemon.stdout.readline())
        daemon.send_signal(signal.SIGTERM)
        rest, stderr = daemon.communicate(timeout=30)
    finally:
        daemon.kill()
    assert daemon.returncode == 0, stderr
    assert first["type"] == "appear" and first["track_id"] == 1
    last = json.loads(rest.splitlines()[-1])
    assert last["type"] == "end" and last["track_id"] == 1
    assert "source picamera2 (live" in stderr


@dataclass(frozen=True)
class Reading:
    timestamp: float
    probabilities: np.ndarray | None
    face_probabilities: np.ndarray | None


@dataclass(frozen=True)
class Fused:
    probabilities: np.ndarray
    method: str


class FixedVoice:
    """A provider whose reading the test controls: voiced, silent, or stale."""

    def __init__(self, reading: Reading | None) -> None:
        self.reading = reading

    def latest(self) -> Reading | None:
        return self.reading


class Averaging:
    def fuse(self, face, face_time, voice, voice_time, now) -> Fused:
        return Fused((np.asarray(face) + np.asarray(voice)) / 2, "product")


class EventCapture:
    """A sink that keeps the events in memory."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def publish_event(self, event: dict) -> None:
        self.events.append(event)

    def publish_state(self, state: dict) -> None:
        """Not needed here."""

    def publish_stats(self, stats: dict) -> None:
        """Not needed here."""

    def close(self, timeout: float) -> None:
        """Nothing to release."""


VOICE_LABELS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


@pytest.mark.parametrize(("age_s", "voiced", "expect_voice"), [(0.1, True, True), (5.0, True, False),
                                                              (0.1, False, False)])
def test_pipeline_adds_voice_and_fused_objects_only_for_fresh_voiced_readings(
        face_model: Path, tmp_path: Path, schema: dict, age_s: float, voiced: bool,
        expect_voice: bool) -> None:
    folder = write_images(tmp_path / "frames", frames(3, guest=None))
    config = load_config(None, env={}, overrides=[("face.model", str(face_model), "--model"),
                                                  ("source.uri", str(folder), "--source"),
                                                  ("mqtt.url", "", "--no-mqtt")])
    pipeline = build_pipeline(config)
    voice = np.array([0.05, 0.05, 0.6, 0.1, 0.05, 0.05, 0.05, 0.05])
    face_view = np.array([0.05, 0.05, 0.05, 0.6, 0.1, 0.05, 0.1])
    reading = Reading(time.time() - age_s, voice if voiced else None, face_view if voiced else None)
    pipeline.voice = VoiceInput(FixedVoice(reading), VOICE_LABELS, Averaging())
    capture = EventCapture()
    pipeline.sinks.append(capture)
    pipeline.run()
    captured = capture.events
    pipeline.source.close()
    assert [e["type"] for e in captured] == ["appear", "end"]
    for event in captured:
        jsonschema.Draft202012Validator(schema).validate(event)
        assert ("voice" in event) is expect_voice and ("fused" in event) is expect_voice
    if expect_voice:
        event = captured[0]
        assert event["voice"]["emotion"] == "happy" and event["voice"]["confidence"] == 0.6
        assert 0.05 <= event["voice"]["age_s"] < 2.0
        assert event["fused"]["method"] == "product"
        assert set(event["fused"]["probabilities"]) == set(FACE_LABELS)


def test_the_daemon_never_imports_tensorflow() -> None:
    probe = ("import sys, device.__main__, device.demo, device.pipeline, device.local_broker; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=daemon_env(), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
