"""`make demo` runs end to end: embedded broker, built-in clip, a subscriber printing what it gets."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from demo.local_broker import free_port
from tests.conftest import ROOT, daemon_env

pytestmark = pytest.mark.integration


def test_demo_prints_what_a_subscriber_receives_and_finishes_by_itself(face_model: Path) -> None:
    command = [sys.executable, "-m", "demo", "--model", str(face_model), "--seconds", "8", "--linger", "0",
               "--dashboard-port", str(free_port())]
    result = subprocess.run(command, cwd=ROOT, env=daemon_env(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "127.0.0.1" in out.splitlines()[0]  # loopback broker only
    assert out.count(" appear ") == 2 and out.count(" end ") == 2  # the guest enters and leaves
    assert "status    online" in out and "status    offline" in out
    assert '"probabilities": {' in out  # the first event, in full
    assert "daemon exited with 0" in out and "the subscriber received" in out


def test_demo_serves_the_dashboard_while_the_clip_plays_and_after(face_model: Path) -> None:
    port = free_port()
    demo = subprocess.Popen([sys.executable, "-m", "demo", "--model", str(face_model), "--seconds", "6",
                             "--linger", "60", "--dashboard-port", str(port)],
                            cwd=ROOT, env=daemon_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        lines = []
        while not (lines and "the clip is over" in lines[-1]):
            lines.append(demo.stdout.readline())
            assert lines[-1], "".join(lines)
        assert f"demo: dashboard on http://127.0.0.1:{port}/" in "".join(lines)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/export.csv?device=demo-pi", timeout=10) as page:
            rows = page.read().decode().splitlines()
        events = sum(1 for line in lines if "/events " in line)
        assert events >= 4 and len(rows) - 1 == events  # the page's history holds every event of the clip
        demo.send_signal(signal.SIGINT)  # Ctrl-C ends the linger
        demo.communicate(timeout=90)
    finally:
        demo.kill()
    assert demo.returncode == 0


def test_demo_without_a_model_says_how_to_get_one(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "demo", "--model", str(tmp_path / "none.tflite")],
                            cwd=ROOT, env=daemon_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "make train quantize" in result.stderr
