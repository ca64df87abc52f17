"""Voice wired into the daemon: the pipeline's voice seam with stand-in readings, the speaker
choice, and `python -m device` with a video and an audio file against a real mosquitto."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import soundfile

from demo.clip import frames, write_images, write_speech, write_video
from device.__main__ import cli_overrides, parse_args
from device.app import App
from device.audio.voice_provider import Fuser, VoiceInput
from device.config import FusionSection, load_config
from device.fusion.product_rule import Fusion
from device.fusion.speaker_fusion import likely_speaker
from device.pipeline import Pipeline
from device.runtime.labels import FACE_LABELS
from device.runtime.voice_labels import VOICE_LABELS, voice_to_face_probabilities
from device.sinks.event_sink import SinkHealth
from device.vision.box_geometry import Box
from device.vision.face_tracker import Track
from tests.conftest import run_daemon
from tests.mosquitto_broker import MosquittoBroker, Subscriber
from tests.voice_fixtures import RATE, syllables

PREFIX = "edge-emotion/talk-pi/"
CLIP_S, CLIP_FPS = 6.0, 15


@dataclass(frozen=True)
class Vad:
    voiced: bool
    active_fraction: float = 0.5
    level_db: float = -20.0


@dataclass(frozen=True)
class Reading:
    """A listener reading the test controls: voiced (with probabilities) or silent."""

    timestamp: float
    probabilities: np.ndarray | None

    @property
    def vad(self) -> Vad:
        return Vad(self.probabilities is not None)

    @property
    def face_probabilities(self) -> np.ndarray | None:
        return None if self.probabilities is None else voice_to_face_probabilities(self.probabilities)


@dataclass(frozen=True)
class ProviderStatus:
    state: str = "running"
    reason: str = ""
    source: str = "a test"


class ScriptedVoice:
    """Hands out `readings[i]` on the i-th call (the pipeline asks once per frame), then the last."""

    status = ProviderStatus()

    def __init__(self, *readings: Reading) -> None:
        self.readings = readings
        self.calls = 0

    def latest(self) -> Reading:
        reading = self.readings[min(self.calls, len(self.readings) - 1)]
        self.calls += 1
        return reading

    def stats(self) -> dict:
        return {"windows": self.calls, "voiced_windows": self.calls, "classify_ms_mean": 1.0,
                "skipped_hops": 0}

    def stop(self) -> None:
        """Nothing runs."""


class EventCapture:
    """A sink that keeps the events and states in memory, with the number of events before each state."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.states: list[tuple[int, dict]] = []

    def publish_event(self, event: dict) -> None:
        self.events.append(event)

    def publish_state(self, state: dict) -> None:
        self.states.append((len(self.events), state))

    def publish_stats(self, stats: dict) -> None:
        """Not needed here."""

    def health(self) -> SinkHealth:
        return SinkHealth()

    def close(self, timeout: float) -> None:
        """Nothing to release."""


def voice_of(label: str, peak: float = 0.6) -> np.ndarray:
    """Voice probabilities with `peak` on `label` and the rest spread evenly."""
    probs = np.full(len(VOICE_LABELS), (1.0 - peak) / (len(VOICE_LABELS) - 1))
    probs[VOICE_LABELS.index(label)] = peak
    return probs


def run_with_voice(face_model: Path, folder: Path, provider: ScriptedVoice, fuser: Fuser,
                   schema: dict, settings: tuple[tuple[str, str], ...] = ()) -> EventCapture:
    """The daemon's own pipeline over an image folder, with a stand-in voice provider; every message
    it sent is checked against the schema."""
    config = load_config(None, env={}, overrides=[("face.model", str(face_model), "--model"),
                                                  ("source.uri", str(folder), "--source"),
                                                  ("mqtt.url", "", "--no-mqtt"),
                                                  *((key, value, "--set") for key, value in settings)])
    parts = App.build(config).pipeline
    capture = EventCapture()
    pipeline = Pipeline(config, parts.source, parts.detector, parts.tracker, parts.classifier, parts.messages,
                        [capture], VoiceInput(provider, VOICE_LABELS, fuser))
    try:
        pipeline.run()
    finally:
        pipeline.source.close()
    validator = jsonschema.Draft202012Validator(schema)
    for message in [*capture.events, *(state for _, state in capture.states)]:
        validator.validate(message)
    return capture


def track(track_id: int, w: int, h: int) -> Track:
    return Track(track_id, Box(10, 10, w, h), started_s=0.0)


def test_the_speaker_is_the_only_face_else_the_largest() -> None:
    assert likely_speaker([]) is None
    alone = track(3, 40, 40)
    assert likely_speaker([alone]) is alone
    near, far = track(2, 120, 130), track(1, 60, 70)
    assert likely_speaker([far, near]) is near and likely_speaker([near, far]) is near
    assert likely_speaker([track(5, 50, 50), track(4, 50, 50)]).track_id == 4  # a tie: the older track


@pytest.mark.parametrize(("age_s", "voiced", "expect_voice", "expect_fused"),
                         [(0.1, True, True, True), (5.0, True, False, False), (0.1, False, True, False)])
def test_fresh_readings_add_voice_and_voiced_ones_fused(face_model: Path, tmp_path: Path, schema: dict,
                                                        age_s: float, voiced: bool, expect_voice: bool,
                                                        expect_fused: bool) -> None:
    folder = write_images(tmp_path / "frames", frames(3, guest=None))
    reading = Reading(time.time() - age_s, voice_of("happy") if voiced else None)
    events = run_with_voice(face_model, folder, ScriptedVoice(reading), Fusion(FusionSection()),
                            schema).events
    assert [e["type"] for e in events] == ["appear", "end"]
    for event in events:
        assert ("voice" in event) is expect_voice and ("fused" in event) is expect_fused
    if expect_voice:
        voice = events[0]["voice"]
        assert voice["vad"]["voiced"] is voiced and 0.05 <= voice["age_s"] < 2.0
        assert ("emotion" in voice) is voiced
        assert voice.get("utterance") == ({"emotion": "happy", "confidence": 0.6, "readings": 1}
                                          if voiced else None)  # one reading, seen on every frame
    if expect_fused:
        event = events[0]
        assert event["voice"]["emotion"] == "happy" and event["voice"]["confidence"] == 0.6
        assert set(event["voice"]["probabilities"]) == set(VOICE_LABELS)
        assert event["fused"]["method"] == "product"
        assert set(event["fused"]["probabilities"]) == set(FACE_LABELS)


@pytest.mark.parametrize(("alpha", "change_frame"), [("1", 3), ("0.35", 4)])
def test_a_change_of_the_fused_emotion_is_a_change_event(face_model: Path, tmp_path: Path, schema: dict,
                                                         alpha: str, change_frame: int) -> None:
    """The fused emotion averages the speaker's readings (audio.utterance_alpha): keeping only the latest,
    the first sad reading turns it; averaged, one sad reading after a happy one is a tie that the
    hysteresis holds, and the second turns it."""
    folder = write_images(tmp_path / "frames", frames(8, guest=None, moving=False))  # the face never changes
    now = time.time()
    happy = Reading(now, voice_of("happy", 0.93))
    sad = [Reading(now + 0.001 * i, voice_of("sad", 0.93)) for i in (1, 2, 3)]
    events = run_with_voice(face_model, folder, ScriptedVoice(happy, happy, happy, *sad),
                            Fusion(FusionSection(voice_weight=4.0)), schema,
                            (("audio.utterance_alpha", alpha),)).events
    assert [e["type"] for e in events] == ["appear", "change", "end"]
    appear, change, end = events
    assert appear["fused"]["emotion"] == "happy" and "previous_emotion" not in appear["fused"]
    assert change["fused"] == {**change["fused"], "emotion": "sad", "previous_emotion": "happy"}
    assert "previous_emotion" not in change and change["emotion"] == appear["emotion"]  # same face
    assert end["fused"]["emotion"] == "sad" and "previous_emotion" not in end["fused"]
    assert change["frame"]["index"] == change_frame  # the frame the deciding reading arrived, not later


def test_state_names_the_speaker_while_they_are_heard_and_drops_them_when_they_fall_silent(
        face_model: Path, tmp_path: Path, schema: dict) -> None:
    """`state.speaker` follows the fusion: with the first fused reading, and again, without any
    event, when the voice falls silent, so a retained state never shows a speaker who stopped."""
    folder = write_images(tmp_path / "frames", frames(8, guest=None, moving=False))
    now = time.time()
    happy, silent = Reading(now, voice_of("happy", 0.93)), Reading(now + 0.5, None)
    capture = run_with_voice(face_model, folder, ScriptedVoice(happy, happy, happy, happy, silent),
                             Fusion(FusionSection(voice_weight=4.0)), schema)
    assert [e["type"] for e in capture.events] == ["appear", "end"]
    speakers = [(before, state.get("speaker")) for before, state in capture.states]
    appear = capture.events[0]
    assert speakers[0] == (1, {"track_id": appear["track_id"], "emotion": "happy",
                               "confidence": appear["fused"]["confidence"], "method": "product"})
    assert speakers[1] == (1, None)  # silence: a state of its own, between the two events
    assert speakers[2] == (2, None) and len(speakers) == 3  # after the end; nothing in between repeats


def test_audio_file_flag_turns_on_the_file_source() -> None:
    overrides = cli_overrides(parse_args(["--audio-file", "talk.wav"]))
    assert {(key, value) for key, value, _ in overrides} == \
        {("audio.enabled", "true"), ("audio.source", "file"), ("audio.file", "talk.wav")}


@pytest.fixture(scope="module")
def talk_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s: the panning face, and a smaller second face from 1.8 s to 4.5 s."""
    clip = frames(round(CLIP_S * CLIP_FPS))
    return write_video(tmp_path_factory.mktemp("talk") / "talk.avi", clip, CLIP_FPS)


@pytest.fixture(scope="module")
def talk_audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 7 s of espeak-ng speech (syllable-like bursts where espeak-ng is missing)."""
    folder = tmp_path_factory.mktemp("talk-audio")
    speech = write_speech(folder / "talk.wav", min_seconds=CLIP_S + 1.0)
    if speech is not None:
        return speech
    soundfile.write(folder / "talk.wav", syllables(CLIP_S + 1.0), RATE)
    return folder / "talk.wav"


def assert_schema_valid(schema: dict, messages: list[dict]) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    for message in messages:
        validator.validate(message)


def broker_run(broker: MosquittoBroker, *args: str) -> tuple[object, Subscriber]:
    """The daemon as a process against `broker`; returns its result and a subscriber that saw it all."""
    sub = Subscriber(broker.port, PREFIX + "#")
    result = run_daemon("--broker", broker.url, "--device-id", "talk-pi", "--set", "mqtt.stats_every_s=0.5",
                        *args)
    assert sub.wait_for(lambda s: s.on("/status") and s.on("/status")[-1]["status"] == "offline", timeout=20)
    sub.close()
    return result, sub


@pytest.mark.integration
def test_video_with_audio_file_publishes_voice_and_fused_events(
        mosquitto: MosquittoBroker, face_model: Path, talk_video: Path, talk_audio: Path, schema: dict,
        tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    started = time.monotonic()
    result, sub = broker_run(mosquitto, "--model", str(face_model), "--source", str(talk_video),
                             "--audio-file", str(talk_audio), "--events-out", str(out),
                             "--set", "events.heartbeat_s=0.5")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "pacing" in result.stderr and elapsed >= CLIP_S  # in step with the audio: real time
    events, statuses, stats = sub.on("/events"), sub.on("/status"), sub.on("/stats")
    assert events == [json.loads(line) for line in out.read_text().splitlines()]
    assert_schema_valid(schema, events + sub.on("/state") + statuses + stats)
    assert all(m["schema_version"] == 2 for m in events + statuses + stats)

    voiced = [e for e in events if "voice" in e and e["voice"]["vad"]["voiced"]]
    fused = [e for e in events if "fused" in e]
    assert len(voiced) >= 3 and fused
    assert all(e["voice"]["age_s"] <= 2.0 for e in voiced)
    assert all(e["voice"]["utterance"]["readings"] >= 1 for e in voiced)
    assert all(e["frame"]["media_time_s"] >= 1.5 for e in voiced)  # the first 2 s window ends at 2 s
    assert {e["track_id"] for e in fused} == {1}  # the large face speaks, not the small guest
    assert any(e["track_id"] == 2 and e["voice"]["vad"]["voiced"] for e in voiced)
    assert all(e["fused"]["method"] == "product" for e in fused)
    speakers = [s["speaker"] for s in sub.on("/state") if "speaker" in s]
    assert speakers and {s["track_id"] for s in speakers} == {1}
    assert {s["emotion"] for s in speakers} <= {e["fused"]["emotion"] for e in fused}

    assert statuses[0]["status"] == "online" and statuses[0]["audio"]["state"] == "running"
    assert talk_audio.name in statuses[0]["audio"]["source"]
    audio = stats[-1]["audio"]
    assert audio["windows"] >= 6 and audio["voiced_windows"] >= 3 and audio["classify_ms_mean"] > 0
    assert audio["skipped_hops"] == 0


@pytest.mark.integration
def test_unopenable_audio_keeps_running_on_video_and_says_so(
        mosquitto: MosquittoBroker, face_model: Path, talk_video: Path, schema: dict, tmp_path: Path) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"this is not a sound file")
    result, sub = broker_run(mosquitto, "--model", str(face_model), "--source", str(talk_video),
                             "--audio-file", str(broken))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("audio unavailable, running on video alone") == 1
    assert "pacing" not in result.stderr  # nothing to keep step with: flat out
    events, statuses, stats = sub.on("/events"), sub.on("/status"), sub.on("/stats")
    assert_schema_valid(schema, events + statuses + stats)
    assert events and all("voice" not in e and "fused" not in e for e in events)
    for audio in (statuses[0]["audio"], stats[-1]["audio"]):
        assert audio["state"] == "unavailable" and "cannot be read" in audio["reason"]
        assert str(broken) in audio["reason"]
    assert stats[-1]["audio"]["windows"] == 0


def test_unopenable_audio_with_required_exits_2_with_one_line(face_model: Path, talk_video: Path,
                                                              tmp_path: Path) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"this is not a sound file")
    result = run_daemon("--model", str(face_model), "--source", str(talk_video), "--no-mqtt",
                        "--audio-file", str(broken), "--set", "audio.required=true")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    # the TFLite runtime announces its XNNPACK delegate itself when the face model loads
    lines = [line for line in result.stderr.strip().splitlines() if "XNNPACK delegate" not in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edge-emotion: audio is required (audio.required = true)")
    assert str(broken) in lines[0] and "audio.required = false" in lines[0]
