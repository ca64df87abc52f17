"""Shared fixtures: a real mosquitto on loopback, a face model with its card, generated clips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mosquitto_broker import MosquittoBroker, mosquitto_binary

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_FACE_MODEL = ROOT / "models" / "face_mini_xception_int8.tflite"
SCHEMA_PATH = ROOT / "device" / "events" / "event_schema.json"


def run_app(config):
    """Build the daemon's application object from `config`, run it to the end of its source and
    return it (its pipeline and gate stay inspectable) with the run's summary."""
    from device.app import App

    app = App.build(config)
    app.start()
    try:
        summary = app.run().summary
    finally:
        app.close()
    return app, summary


@pytest.fixture
def mosquitto(tmp_path: Path):
    """A fresh mosquitto (persistence on, so a subscriber's session survives a restart)."""
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (apt install mosquitto)")
    broker = MosquittoBroker(tmp_path / "broker", persistence=True).start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def face_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped face model when present, else a tiny untrained int8 model in the same format."""
    if SHIPPED_FACE_MODEL.is_file() and SHIPPED_FACE_MODEL.with_suffix(".json").is_file():
        return SHIPPED_FACE_MODEL
    from tests.model_factory import build_face_model

    return build_face_model(tmp_path_factory.mktemp("models"), "tiny_face_int8")


@pytest.fixture(scope="session")
def demo_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 s at 15 fps: a panning face, and a second face that enters at 30% and leaves at 75%."""
    from demo.clip import frames, write_video

    return write_video(tmp_path_factory.mktemp("clips") / "demo.avi", frames(180), fps=15)


@pytest.fixture(scope="session")
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def daemon_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "device", *args]


def daemon_env(**extra: str) -> dict[str, str]:
    """The test environment minus any EDGE_EMOTION_* the developer has set, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_EMOTION_")}
    env["PYTHONPATH"] = str(ROOT)
    return {**env, **extra}


def run_daemon(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(daemon_command(*args), cwd=ROOT, env=daemon_env(**env), capture_output=True,
                          text=True, timeout=timeout)
