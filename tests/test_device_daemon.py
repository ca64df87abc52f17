"""`python -m device` offline and on the Pi camera path (voice: test_device_voice_integration.py)."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import jsonschema
import numpy as np

from demo.clip import frames, write_images
from tests.conftest import ROOT, daemon_command, daemon_env, run_daemon


def test_offline_file_to_stdout_runs_flat_out_and_exits_0(face_model: Path, demo_video: Path,
                                                           schema: dict) -> None:
    result = run_daemon("--model", str(face_model), "--source", str(demo_video), "--events-out", "-",
                        "--no-mqtt")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    validator = jsonschema.Draft202012Validator(schema)
    for event in events:
        validator.validate(event)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    # (`change` events depend on what the model reads in the faces; the track lifecycle does not)
    assert [(e["type"], e["track_id"]) for e in events if e["type"] in ("appear", "end")] == \
        [("appear", 1), ("appear", 2), ("end", 2), ("end", 1)]
    guest = [e for e in events if e["track_id"] == 2]
    assert 0.25 * 12 < guest[0]["frame"]["media_time_s"] < 0.45 * 12  # enters at 30% of the 12 s clip
    assert 0.7 * 12 < guest[-1]["frame"]["media_time_s"] < 0.9 * 12  # leaves at 75%
    assert all("snapshot" not in e for e in events)  # no image leaves the device by default
    assert "pacing" not in result.stderr  # a file is processed flat out unless asked (speed: make bench)
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


def test_the_daemon_never_imports_tensorflow() -> None:
    probe = ("import sys, device.__main__, demo, device.pipeline, demo.local_broker; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=daemon_env(), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
