"""Event policy and the message schema: what is published, and that the schema really constrains it."""

from __future__ import annotations

import copy
import uuid

import jsonschema
import numpy as np
import pytest

from device.box_geometry import Box
from device.emotion_events import MessageFactory, TrackSnapshot, due_event, utc_now_iso
from device.labels import FACE_LABELS
from device.model_card_check import ModelIdentity


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


def test_voice_and_fused_objects_are_part_of_the_contract(factory: MessageFactory, schema: dict) -> None:
    extras = {"voice": {"emotion": "calm", "confidence": 0.6, "probabilities": {"calm": 0.6, "sad": 0.4},
                        "age_s": 0.4},
              "fused": {"emotion": "happy", "confidence": 0.8,
                        "probabilities": dict.fromkeys(FACE_LABELS, 0.1), "method": "product"},
              "snapshot": {"format": "jpeg", "data": "/9j/4AAQ"}}
    validator(schema).validate(factory.event("appear", snapshot(), FRAME, extras))


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
])
def test_schema_rejects_broken_events(factory: MessageFactory, schema: dict, break_it) -> None:
    event = copy.deepcopy(factory.event("heartbeat", snapshot(), FRAME))
    break_it(event)
    with pytest.raises(jsonschema.ValidationError):
        validator(schema).validate(event)
