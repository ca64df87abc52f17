"""`make demo` runs end to end: embedded broker, built-in clip, a subscriber printing what it gets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, daemon_env

pytestmark = pytest.mark.integration


def test_demo_prints_what_a_subscriber_receives_and_finishes_by_itself(face_model: Path) -> None:
    command = [sys.executable, "-m", "demo", "--model", str(face_model), "--seconds", "8"]
    result = subprocess.run(command, cwd=ROOT, env=daemon_env(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "127.0.0.1" in out.splitlines()[0]  # loopback broker only
    assert out.count(" appear ") == 2 and out.count(" end ") == 2  # the guest enters and leaves
    assert "status    online" in out and "status    offline" in out
    assert '"probabilities": {' in out  # the first event, in full
    assert "daemon exited with 0" in out and "the subscriber received" in out


def test_demo_without_a_model_says_how_to_get_one(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "demo", "--model", str(tmp_path / "none.tflite")],
                            cwd=ROOT, env=daemon_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "make train quantize" in result.stderr
