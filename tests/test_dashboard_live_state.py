"""What the page is told: faces from events and state, offline at once, the trace; topics and flags."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from benchmarks.fleet_simulator import event_message, state_message, stats_message, status_message
from dashboard.config import ConfigError, load_config
from dashboard.device_messages import FACE_LABELS, DeviceMessage, iso_time
from dashboard.live_state import TRACE_BUCKET_S, LiveState
from dashboard.mqtt_ingest import MqttIngest, TopicLayout

BOOT = "a" * 32


def probabilities(emotion: str) -> dict[str, float]:
    return {label: (0.64 if label == emotion else 0.06) for label in FACE_LABELS}


def message(kind: str, payload: dict, device: str = "pi-1") -> DeviceMessage:
    return DeviceMessage(device, kind, payload, time.time())


def event(seq: int, kind: str, track: int, emotion: str, boot: str = BOOT) -> DeviceMessage:
    return message("events", event_message("pi-1", boot, seq, kind, track, probabilities(emotion)))


def test_faces_follow_their_events() -> None:
    state = LiveState(trace_minutes=10)
    state.apply(event(1, "appear", 1, "happy"))
    state.apply(event(2, "appear", 2, "sad"))
    state.apply(event(3, "change", 1, "surprise"))
    [view] = state.take_changes()
    assert [(t["track_id"], t["emotion"]) for t in view["tracks"]] == [(1, "surprise"), (2, "sad")]
    assert view["tracks"][0]["probabilities"]["surprise"] == pytest.approx(0.64)
    assert view["events"] == 3 and state.take_changes() == []  # nothing changed since
    state.apply(event(4, "end", 2, "sad"))
    assert [t["track_id"] for t in state.take_changes()[0]["tracks"]] == [1]


def test_state_replaces_faces_unless_older_than_the_last_event() -> None:
    state = LiveState(trace_minutes=10)
    state.apply(event(5, "appear", 7, "happy"))
    stale = state_message("pi-1", BOOT, 4, [])  # published before event 5, arrived after it
    state.apply(message("state", stale))
    assert [t["track_id"] for t in state.take_changes()[0]["tracks"]] == [7]
    face = event_message("pi-1", BOOT, 5, "appear", 8, probabilities("fear"))
    current = state_message("pi-1", BOOT, 5, [face])
    state.apply(message("state", current))
    [track] = state.take_changes()[0]["tracks"]
    assert (track["track_id"], track["emotion"], track["probabilities"]) == (8, "fear", None)


def test_offline_is_urgent_and_clears_faces() -> None:
    state = LiveState(trace_minutes=10)
    assert state.apply(message("status", status_message("pi-1", BOOT, "online")))
    state.apply(event(1, "appear", 1, "happy"))
    assert not state.apply(message("stats", stats_message("pi-1", BOOT, 12.0, 1)))
    assert state.apply(message("status", status_message("pi-1", BOOT, "offline")))
    [view] = state.take_changes()
    assert view["status"] == "offline" and view["tracks"] == [] and view["voice"] is None
    assert view["stats"]["fps"] == 15.0 and set(view["stats"]["stage_ms"]) >= {"detect", "infer"}
    assert not state.apply(message("status", status_message("pi-1", BOOT, "offline")))  # no change


def test_the_trace_averages_buckets_and_forgets_old_ones() -> None:
    state = LiveState(trace_minutes=1)
    now = time.time()
    start = now - now % TRACE_BUCKET_S
    for seq, (at, emotion) in enumerate([(now - 300, "happy"), (start, "happy"), (start + 0.1, "sad")], 1):
        payload = event_message("pi-1", BOOT, seq, "change", 1, probabilities(emotion))
        payload["time"] = iso_time(at)
        state.apply(message("events", payload))
    [view] = state.snapshot()
    happy = event_message("pi-1", BOOT, 1, "change", 1, probabilities("happy"))["valence"]
    sad = event_message("pi-1", BOOT, 1, "change", 1, probabilities("sad"))["valence"]
    assert len(view["trace"]) == 1  # 300 s ago is outside the minute
    assert view["trace"][0][0] == pytest.approx(start)
    assert view["trace"][0][1] == pytest.approx((happy + sad) / 2, abs=0.001)


def test_the_trace_is_the_mean_of_the_faces_in_view() -> None:
    """Two faces taking turns to report draw one steady line, not a zigzag between them."""
    state = LiveState(trace_minutes=10)
    now = time.time()
    for i in range(20):
        emotion, track = ("happy", 1) if i % 2 else ("sad", 2)
        payload = event_message("pi-1", BOOT, i + 1, "heartbeat", track, probabilities(emotion))
        payload["time"] = iso_time(now - 60 + 2 * TRACE_BUCKET_S * i)
        state.apply(message("events", payload))
    [view] = state.snapshot()
    values = [v for _, v, _ in view["trace"][1:]]
    assert max(values) - min(values) < 1e-3


def test_seed_from_history_replays_recent_events() -> None:
    state = LiveState(trace_minutes=10)
    now = time.time()
    bucket = now - 100 - (now - 100) % TRACE_BUCKET_S
    state.seed([{"device": "pi-9", "status": "offline", "status_ts": now - 60, "boot_id": BOOT,
                 "last_event_ts": now - 61}],
               {"pi-9": [(bucket + 0.1, "appear", 1, 0.5, -0.2), (bucket + 0.5, "appear", 2, 0.1, 0.2)]})
    [view] = state.snapshot()
    assert (view["device"], view["status"], view["tracks"]) == ("pi-9", "offline", [])
    # samples: face 1 alone (0.5, -0.2), then both faces (0.3, 0.0); the bucket is their mean
    assert view["trace"] == [[bucket, 0.4, -0.1]]


def test_topic_layout() -> None:
    layout = TopicLayout("site/{device_id}/emotion/")
    assert layout.filter("events") == "site/+/emotion/events"
    assert layout.parse("site/kitchen-pi/emotion/status") == ("kitchen-pi", "status")
    assert layout.parse("site/kitchen-pi/emotion/other") is None
    assert layout.parse("site/a/b/emotion/events") is None


def test_shared_subscription_only_for_events(tmp_path: Path) -> None:
    config = load_config(["--share-group", "dashboards", "--db", str(tmp_path / "h.sqlite3")], env={})
    ingest = MqttIngest(config, lambda message: None)
    assert ingest.subscriptions == ["$share/dashboards/edge-emotion/+/events", "edge-emotion/+/state",
                                    "edge-emotion/+/stats", "edge-emotion/+/status"]


def test_secrets_come_from_files_or_the_environment(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    config = load_config(["--mqtt-username", "dash", "--mqtt-password-file", str(password),
                          "--db", str(tmp_path / "h.sqlite3")],
                         env={"EDGE_EMOTION_DASHBOARD_TOKEN": "t" * 12})
    assert (config.mqtt_password, config.access_token) == ("s3cret", "t" * 12)
    assert "s3cret" not in repr(config) and "t" * 12 not in repr(config)
    with pytest.raises(ConfigError, match="at least 8"):
        load_config(["--db", str(tmp_path / "h.sqlite3")], env={"EDGE_EMOTION_DASHBOARD_TOKEN": "short"})
    with pytest.raises(ConfigError, match="--mqtt-username"):
        load_config(["--db", str(tmp_path / "h.sqlite3")], env={"EDGE_EMOTION_DASHBOARD_MQTT_PASSWORD": "x"})
    assert load_config([], env={"XDG_STATE_HOME": str(tmp_path)}).db_path == (
        tmp_path / "edge-emotion" / "dashboard.sqlite3")
