"""Event policy and the message schema: what is published, and that the schema really constrains it."""

from __future__ import annotations

import copy
import uuid

import jsonschema
import numpy as np
import pytest

from device.audio.vad import VadDecision
from device.audio.voice_listener import ListenerStatus, VoiceReading
from device.events.emotion_events import (
    MessageFactory,
    TrackSnapshot,
    audio_field,
    due_event,
    fused_field,
    utc_now_iso,
    voice_field,
)
from device.events.emotion_smoother import TrackEmotion
from device.runtime.labels import FACE_LABELS
from device.runtime.model_card_check import ModelIdentity
from device.runtime.voice_labels import VOICE_LABELS
from device.vision.box_geometry import Box


def validator(schema: dict, kind: str | None = None) -> jsonschema.Draft202012Validator:
    target = schema if kind is None else {**schema, "oneOf": [{"$ref": f"#/$defs/{kind}"}]}
    return jsonschema.Draft202012Validator(target, format_checker=jsonschema.FormatChecker())


@pytest.fixture
def factory() -> MessageFactory:
    model = ModelIdentity("face_mini_xception_int8", "0123456789ab")
    return MessageFactory("pi-kitchen", uuid.uuid4().hex, model, FACE_LABELS)


def snapshot(track_id: int = 3) -> TrackSnapshot:
    p = np.array([0.05, 0.01, 0.04, 0.7, 0.05, 0.05, 0.1])
    return TrackSnapshot(track_id, Box(10, 20, 90, 90), 1.5, "happy", 0.7, p, 0.55, 0.4)


FRAME = {"index": 12, "media_time_s": 0.8, "width": 640, "height": 480}


def test_due_event_policy() -> None:
    assert due_event(False, False, 0.0, 5.0, 10.0) == "appear"
    assert due_event(True, True, 4.9, 5.0, 10.0) == "change"
    assert due_event(True, False, 0.0, 9.9, 10.0) is None
    assert due_event(True, False, 0.0, 10.0, 10.0) == "heartbeat"
    assert due_event(True, False, 0.0, 1e6, 0.0) is None  # heartbeat_s = 0 switches heartbeats off


def test_events_are_schema_valid_and_sequenced(factory: MessageFactory, schema: dict) -> None:
    first = factory.event("appear", snapshot(), FRAME)
    second = factory.event("change", snapshot(), FRAME, {"previous_emotion": "neutral"})
    for event in (first, second):
        validator(schema).validate(event)
        validator(schema, "event").validate(event)
    assert (first["seq"], second["seq"]) == (1, 2)
    assert first["boot_id"] == second["boot_id"] and len(first["boot_id"]) == 32
    assert set(first["probabilities"]) == set(FACE_LABELS)
    assert first["emotion"] == "happy" and first["model"] == {"name": "face_mini_xception_int8",
                                                              "version": "0123456789ab"}
    assert first["time"].endswith("Z") and first["time"] <= utc_now_iso()


def test_state_status_stats_are_schema_valid(factory: MessageFactory, schema: dict) -> None:
    validator(schema, "state").validate(factory.state([snapshot(1), snapshot(2)]))
    validator(schema, "state").validate(factory.state([]))
    validator(schema, "status").validate(factory.status("online", "0.1.0"))
    stats = factory.stats({"uptime_s": 3.0, "frames": 90, "fps": 30.0,
                           "stage_ms": dict.fromkeys(("capture", "detect", "track", "preprocess", "infer",
                                                      "smooth", "publish"), 0.1),
                           "faces": 1, "dropped_frames": 0, "queue_depth": 0, "events": 4,
                           "events_dropped": 0, "cpu_temp_c": None, "rss_mb": 80.0})
    validator(schema, "stats").validate(stats)


VOICED = VoiceReading(0.0, VadDecision(True, 0.6, -18.0, -60.0), np.full(8, 0.05) + np.eye(8)[1] * 0.6)
SILENT = VoiceReading(0.0, VadDecision(False, 0.0, -70.0, -72.0))


def voice_extras(previous: int | None = None) -> dict:
    fused = TrackEmotion()
    fused.update(np.array([0.05, 0.01, 0.04, 0.7, 0.05, 0.05, 0.1]), 1.0, 0.1)
    return {"voice": voice_field(VOICE_LABELS, VOICED, 0.4),
            "fused": fused_field(FACE_LABELS, fused, "product", previous)}


def test_voice_and_fused_objects_are_part_of_the_contract(factory: MessageFactory, schema: dict) -> None:
    appear = factory.event("appear", snapshot(), FRAME, {**voice_extras(),
                                                         "snapshot": {"format": "jpeg", "data": "/9j/4AAQ"}})
    change = factory.event("change", snapshot(), FRAME, voice_extras(previous=6))
    silent = factory.event("heartbeat", snapshot(), FRAME, {"voice": voice_field(VOICE_LABELS, SILENT, 1.2)})
    for event in (appear, change, silent):
        validator(schema).validate(event)
    assert appear["voice"]["emotion"] == "calm" and set(appear["voice"]["probabilities"]) == set(VOICE_LABELS)
    assert appear["fused"]["emotion"] == "happy" and change["fused"]["previous_emotion"] == "neutral"
    assert silent["voice"] == {"vad": {"voiced": False, "active_fraction": 0.0, "level_db": -70.0},
                               "age_s": 1.2}
    version_1 = {k: v for k, v in appear.items() if k not in ("voice", "fused")}
    validator(schema).validate({**version_1, "schema_version": 1})  # old messages still valid


def test_status_and_stats_report_audio(factory: MessageFactory, schema: dict) -> None:
    busy = "cannot open microphone default (busy)"
    status = factory.status("online", "0.2.0", audio_field(ListenerStatus("unavailable", busy)))
    validator(schema, "status").validate(status)
    assert status["audio"] == {"state": "unavailable", "source": "", "reason": busy}
    counters = {"windows": 10, "voiced_windows": 4, "classify_ms_mean": 6.2, "skipped_hops": 0}
    listening = ListenerStatus("running", "", "microphone default")
    stats = factory.stats({"uptime_s": 3.0, "frames": 90, "fps": 30.0,
                           "stage_ms": dict.fromkeys(("capture", "detect", "track", "preprocess", "infer",
                                                      "smooth", "publish"), 0.1),
                           "faces": 1, "dropped_frames": 0, "queue_depth": 0, "events": 4,
                           "events_dropped": 0, "cpu_temp_c": None, "rss_mb": 80.0,
                           "audio": audio_field(listening, counters)})
    validator(schema, "stats").validate(stats)
    stats["audio"].pop("windows")
    with pytest.raises(jsonschema.ValidationError):
        validator(schema, "stats").validate(stats)


@pytest.mark.parametrize("break_it", [
    lambda e: e.pop("probabilities"),
    lambda e: e["probabilities"].pop("fear"),
    lambda e: e.update(emotion="bored"),
    lambda e: e.update(seq=0),
    lambda e: e.update(type="blink"),
    lambda e: e.update(image="base64..."),  # no unannounced extra fields (no images by the back door)
    lambda e: e.update(valence=1.5),
    lambda e: e["box"].update(w=0),
    lambda e: e.update(time="2026-11-22 10:00:00"),
    lambda e: e.update(fused={"emotion": "happy", "confidence": 0.5, "probabilities": {"happy": 0.5},
                              "method": "face"}),
    lambda e: e.update(voice_extras()) or e["fused"].update(method="face"),  # fusion needs both
    lambda e: e.update(voice_extras()) or e["voice"].pop("emotion"),  # voiced windows have an emotion
    lambda e: e.update(voice_extras()) or e["voice"]["probabilities"].pop("calm"),  # all 8 voice classes
    lambda e: e.update(voice={**voice_field(VOICE_LABELS, SILENT, 0.2), "emotion": "calm"}),  # silent: none
    lambda e: e.update(schema_version=3),
])
def test_schema_rejects_broken_events(factory: MessageFactory, schema: dict, break_it) -> None:
    event = copy.deepcopy(factory.event("heartbeat", snapshot(), FRAME))
    break_it(event)
    with pytest.raises(jsonschema.ValidationError):
        validator(schema).validate(event)
