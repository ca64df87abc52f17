"""Home Assistant discovery: the payload against the rules of Home Assistant's MQTT docs, its value
templates rendered against real state/stats/event messages, and the daemon on a real mosquitto.

The rules checked (https://www.home-assistant.io/integrations/mqtt/, "Device discovery payload",
and https://www.home-assistant.io/integrations/sensor.mqtt/):
- the root carries `device` (`dev`) with at least one identifier, `origin` (`o`) with a name, and
  `components` (`cmps`); besides those only the shared options (availability, state_topic, ...);
- every component has its platform (`p`) and, being an entity, a `unique_id`; ids and the
  discovery topic's object id use only [a-zA-Z0-9_-];
- `options` only on `device_class: enum`, never empty, never with `unit_of_measurement` or
  `state_class`;
- what a template renders becomes the state: "None" sets unknown, a numeric sensor needs a number,
  an enum sensor drops anything outside its options (so no template may ever produce that).
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
import soundfile

from demo.clip import write_speech
from device.audio.vad import VadDecision
from device.audio.voice_listener import VoiceReading
from device.audio.voice_utterance import VoiceUtterance
from device.config import ConfigError, HomeAssistantSection, load_config
from device.events.emotion_events import MessageFactory, TrackSnapshot, voice_field
from device.runtime.labels import FACE_LABELS
from device.runtime.model_card_check import ModelIdentity
from device.runtime.voice_labels import VOICE_LABELS
from device.sinks.home_assistant import announcement, config_topic, discovery_payload, object_id
from device.vision.box_geometry import Box
from tests.conftest import ROOT, daemon_command, daemon_env, run_daemon
from tests.mosquitto_broker import LOOPBACK, MosquittoBroker
from tests.voice_fixtures import RATE, syllables

jinja2 = pytest.importorskip("jinja2")
from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: E402

PREFIX = "edge-emotion/test-pi/"
ALLOWED_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
# Abbreviations Home Assistant expands (the subset a payload of ours could use), per level.
ROOT_ABBREVIATIONS = {"dev": "device", "o": "origin", "cmps": "components", "avty": "availability",
                      "avty_t": "availability_topic", "avty_tpl": "availability_template",
                      "avty_mode": "availability_mode", "stat_t": "state_topic", "cmd_t": "command_topic",
                      "e": "encoding", "pl_avail": "payload_available",
                      "pl_not_avail": "payload_not_available"}
COMPONENT_ABBREVIATIONS = {"p": "platform", "uniq_id": "unique_id", "stat_t": "state_topic",
                           "val_tpl": "value_template", "dev_cla": "device_class", "stat_cla": "state_class",
                           "unit_of_meas": "unit_of_measurement", "ops": "options", "exp_aft": "expire_after",
                           "ent_cat": "entity_category", "ic": "icon", "avty": "availability",
                           "sug_dsp_prc": "suggested_display_precision"}
DEVICE_ABBREVIATIONS = {"ids": "identifiers", "cns": "connections", "mf": "manufacturer", "mdl": "model",
                        "mdl_id": "model_id", "sw": "sw_version", "hw": "hw_version", "sn": "serial_number",
                        "sa": "suggested_area", "cu": "configuration_url"}
ORIGIN_ABBREVIATIONS = {"sw": "sw_version", "url": "support_url"}
# Options a device discovery payload may carry at its root (shared with every component).
SHARED_OPTIONS = {"availability", "availability_mode", "availability_template", "availability_topic",
                  "command_topic", "encoding", "payload_available", "payload_not_available", "state_topic",
                  "qos", "message_expiry_interval"}
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
TEMPERATURE_UNITS = {"°C", "°F", "K"}


def expanded(payload: dict) -> dict:
    """The payload with Home Assistant's abbreviations replaced by the full option names."""
    def expand(d: dict, table: dict[str, str]) -> dict:
        return {table.get(key, key): value for key, value in d.items()}

    root = expand(payload, ROOT_ABBREVIATIONS)
    if isinstance(root.get("device"), dict):
        root["device"] = expand(root["device"], DEVICE_ABBREVIATIONS)
    if isinstance(root.get("origin"), dict):
        root["origin"] = expand(root["origin"], ORIGIN_ABBREVIATIONS)
    if isinstance(root.get("components"), dict):
        root["components"] = {key: expand(c, COMPONENT_ABBREVIATIONS) if isinstance(c, dict) else c
                              for key, c in root["components"].items()}
    return root


def valid_topic(topic: object) -> bool:
    return isinstance(topic, str) and topic != "" and not (set(topic) & set("+#\x00"))


def rule_violations(payload: dict) -> list[str]:
    """Every way `payload` breaks the documented rules of a device discovery message."""
    problems: list[str] = []
    p = expanded(payload)
    device, origin, components = p.get("device"), p.get("origin"), p.get("components")
    if not isinstance(device, dict):
        problems.append("no device mapping (dev)")
    elif not (device.get("identifiers") or device.get("connections")):
        problems.append("the device has no identifiers or connections")
    elif not all(isinstance(i, str) and i for i in device.get("identifiers", [])):
        problems.append("device identifiers must be non-empty strings")
    if not isinstance(origin, dict) or not isinstance(origin.get("name"), str) or not origin["name"]:
        problems.append("no origin (o) with a name")
    elif "support_url" in origin and not re.match(r"^https?://", origin["support_url"]):
        problems.append("origin support_url is not a URL")
    for key in set(p) - {"device", "origin", "components"} - SHARED_OPTIONS:
        problems.append(f"{key!r} is not a shared option of a device discovery payload")
    for item in p.get("availability", []):
        if not valid_topic(item.get("topic")):
            problems.append(f"availability topic {item.get('topic')!r} is not a topic")
    if not isinstance(components, dict) or not components:
        return [*problems, "no components (cmps)"]
    seen_ids: set[str] = set()
    for key, c in components.items():
        where = f"component {key!r}"
        if not ALLOWED_ID.match(key):
            problems.append(f"{where}: its id has characters outside [a-zA-Z0-9_-]")
        if c.get("platform") != "sensor":  # the only platform we publish
            problems.append(f"{where}: platform (p) must be sensor, not {c.get('platform')!r}")
        if len(c) < 2:
            problems.append(f"{where}: needs at least one option besides the platform")
        uid = c.get("unique_id")
        if not isinstance(uid, str) or not ALLOWED_ID.match(uid):
            problems.append(f"{where}: unique_id {uid!r} missing or outside [a-zA-Z0-9_-]")
        elif uid in seen_ids:
            problems.append(f"{where}: unique_id {uid!r} used twice")
        else:
            seen_ids.add(uid)
        if not valid_topic(c.get("state_topic", p.get("state_topic"))):
            problems.append(f"{where}: no valid state_topic")
        options = c.get("options")
        if c.get("device_class") == "enum" or options is not None:
            if c.get("device_class") != "enum":
                problems.append(f"{where}: options need device_class enum")
            if not isinstance(options, list) or not options or len(set(options)) != len(options):
                problems.append(f"{where}: options must be a non-empty list without repeats")
            for banned in ("unit_of_measurement", "state_class"):
                if banned in c:
                    problems.append(f"{where}: an enum sensor may not have {banned}")
        if "state_class" in c and c["state_class"] not in STATE_CLASSES:
            problems.append(f"{where}: unknown state_class {c['state_class']!r}")
        if c.get("device_class") == "temperature" and c.get("unit_of_measurement") not in TEMPERATURE_UNITS:
            problems.append(f"{where}: a temperature needs a temperature unit")
        if "entity_category" in c and c["entity_category"] != "diagnostic":  # sensors cannot be config
            problems.append(f"{where}: a sensor's entity_category can only be diagnostic")
        if "expire_after" in c and not (isinstance(c["expire_after"], int) and c["expire_after"] > 0):
            problems.append(f"{where}: expire_after must be a positive integer")
        try:
            ENV.from_string(c.get("value_template", ""))
        except jinja2.TemplateSyntaxError as exc:
            problems.append(f"{where}: value_template does not compile ({exc})")
    return problems


# Home Assistant renders templates in a sandbox; StrictUndefined makes any touch of a missing key
# fail here (Home Assistant would log a warning for it).
ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)


def render(template: str, payload: str) -> str:
    """A value template rendered the way Home Assistant's MQTT sensor does it."""
    variables = {"value": payload}
    with contextlib.suppress(ValueError):  # not JSON: Home Assistant leaves value_json undefined
        variables["value_json"] = json.loads(payload)
    return ENV.from_string(template).render(**variables)


def numeric(component: dict) -> bool:
    return any(k in component for k in ("state_class", "unit_of_measurement", "suggested_display_precision"))


def sensor_state(component: dict, payload: str) -> str | float | None:
    """The state Home Assistant ends up with (None: unknown); fails the test on anything it would drop
    or refuse (a state outside an enum's options, text on a numeric sensor)."""
    rendered = render(component["value_template"], payload)
    if rendered == "None":
        return None
    if component.get("device_class") == "enum":
        assert rendered in component["options"], f"{rendered!r} is not one of {component['options']}"
        return rendered
    if numeric(component):
        return float(rendered)  # ValueError: Home Assistant would refuse the state
    return rendered


def payload(audio: bool = False, device_id: str = "test-pi", heartbeat_s: float = 10.0) -> dict:
    """Audio on comes with fusion on (the default), hence the speaker's fused emotion."""
    return discovery_payload(HomeAssistantSection(), device_id, f"edge-emotion/{device_id}/", "0.1.0",
                             FACE_LABELS, VOICE_LABELS if audio else None, heartbeat_s, fused=audio)


def messages() -> MessageFactory:
    model = ModelIdentity("face_mini_xception_int8", "0123456789ab")
    return MessageFactory("test-pi", uuid.uuid4().hex, model, FACE_LABELS)


def track(track_id: int, emotion: str, confidence: float, valence: float = 0.2,
          arousal: float = -0.1) -> TrackSnapshot:
    return TrackSnapshot(track_id, Box(10 * track_id, 20, 80, 80), 1.0, emotion, confidence,
                         np.full(7, 1 / 7), valence, arousal)


def state_text(*tracks: TrackSnapshot) -> str:
    return json.dumps(messages().state(list(tracks)))


def stats_text(fps: float = 14.9, cpu_temp_c: float | None = 51.2) -> str:
    return json.dumps(messages().stats({
        "uptime_s": 3.0, "frames": 90, "fps": fps, "stage_ms": {}, "dropped_frames": 0, "queue_depth": 0,
        "events": 4, "events_dropped": 0, "cpu_temp_c": cpu_temp_c, "rss_mb": 80.0}))


# --- the payload against the documented rules ---------------------------------------------------

@pytest.mark.parametrize("audio", [False, True])
def test_payload_follows_the_device_discovery_rules(audio: bool) -> None:
    p = payload(audio)
    assert rule_violations(p) == []
    assert p["dev"]["identifiers"] == ["edge-emotion-test-pi"]
    assert p["dev"]["name"] == "test-pi" and p["dev"]["manufacturer"] == p["dev"]["model"] == "edge-emotion"
    assert p["o"]["name"] == "edge-emotion" and p["o"]["sw_version"] == "0.1.0"
    keys = {"emotion", "confidence", "valence", "arousal", "faces", "fps", "cpu_temperature"}
    assert set(p["cmps"]) == (keys | {"voice_emotion", "speaker_emotion"} if audio else keys)
    assert {c["unique_id"] for c in p["cmps"].values()} == {f"edge_emotion_test-pi_{k}" for k in p["cmps"]}
    assert p["availability"] == [{"topic": PREFIX + "status", "value_template": "{{ value_json.status }}",
                                  "payload_available": "online", "payload_not_available": "offline"}]
    assert {c["state_topic"] for c in p["cmps"].values()} == (
        {PREFIX + "state", PREFIX + "stats"} | ({PREFIX + "events"} if audio else set()))
    face = p["cmps"]["emotion"]
    assert face["device_class"] == "enum" and face["options"] == list(FACE_LABELS)
    assert {p["cmps"][k]["entity_category"] for k in ("fps", "cpu_temperature")} == {"diagnostic"}
    assert p["cmps"]["cpu_temperature"]["unit_of_measurement"] == "°C"
    assert p["cmps"]["confidence"]["unit_of_measurement"] == "%"
    if audio:
        assert p["cmps"]["voice_emotion"]["options"] == list(VOICE_LABELS)
        assert p["cmps"]["voice_emotion"]["expire_after"] == 21  # two heartbeats and a second
        speaker = p["cmps"]["speaker_emotion"]
        assert speaker["options"] == list(FACE_LABELS) and speaker["state_topic"] == PREFIX + "state"
        assert "expire_after" not in speaker  # the daemon publishes state when the speaker falls silent
    json.dumps(p)  # plain JSON


def test_the_rule_check_catches_each_broken_rule() -> None:
    def broken(change: Callable[[dict], None]) -> list[str]:
        p = json.loads(json.dumps(payload(audio=True)))
        change(p)
        return rule_violations(p)

    assert broken(lambda p: p.pop("o"))
    assert broken(lambda p: p.update(o={"sw_version": "1"}))
    assert broken(lambda p: p["dev"].update(identifiers=[]))
    assert broken(lambda p: p.update(cmps={}))
    assert broken(lambda p: p["cmps"]["faces"].pop("unique_id"))
    assert broken(lambda p: p["cmps"]["faces"].pop("p"))
    assert broken(lambda p: p["cmps"]["faces"].update(unique_id="edge emotion.faces"))
    assert broken(lambda p: p["cmps"]["fps"].update(unique_id=p["cmps"]["faces"]["unique_id"]))
    assert broken(lambda p: p["cmps"]["emotion"].update(options=[]))
    assert broken(lambda p: p["cmps"]["emotion"].update(state_class="measurement"))
    assert broken(lambda p: p["cmps"]["voice_emotion"].update(unit_of_measurement="%"))
    assert broken(lambda p: p["cmps"]["faces"].update(options=["1", "2"]))
    assert broken(lambda p: p["cmps"]["faces"].update(state_topic="edge-emotion/+/state"))
    assert broken(lambda p: p.update(name="not shared"))
    assert broken(lambda p: p["cmps"]["emotion"].update(value_template="{{ value_json.tracks[0] "))
    # a template that could say something outside the options fails the state check
    stray = {"p": "sensor", "device_class": "enum", "options": ["happy"], "value_template": "{{ 'bored' }}"}
    with pytest.raises(AssertionError, match="bored"):
        sensor_state(stray, "{}")
    with pytest.raises(ValueError):
        sensor_state({"state_class": "measurement", "value_template": "{{ 'n/a' }}"}, "{}")
    # abbreviated and full names are the same option
    p = payload()
    p["cmps"]["faces"]["uniq_id"] = p["cmps"]["faces"].pop("unique_id")
    assert rule_violations(p) == []


@pytest.mark.parametrize("device_id", ["pi.kitchen", "küche", "pi:1", "a@b", "pi_kitchen"])
def test_ids_keep_to_the_allowed_characters_and_stay_distinct(device_id: str) -> None:
    section = HomeAssistantSection()
    topic = config_topic(section, device_id)
    assert re.match(r"^homeassistant/device/[a-zA-Z0-9_-]+/config$", topic)
    p = payload(device_id=device_id)
    assert rule_violations(p) == []
    assert object_id(device_id) == object_id(device_id)  # stable across restarts
    assert p["dev"]["name"] == device_id  # the name keeps the id as written
    # an id that had to change never lands on the object of one that did not
    assert object_id("pi.kitchen") != object_id("pi_kitchen") == "pi_kitchen"
    assert config_topic(HomeAssistantSection(prefix="ha/disc"), "pi") == "ha/disc/device/pi/config"


def test_name_and_prefix_come_from_the_section() -> None:
    section = HomeAssistantSection(prefix="ha", name="Hall camera")
    made = announcement(section, "pi-hall", "edge-emotion/pi-hall/", "0.1.0", FACE_LABELS)
    assert made.config_topic == "ha/device/pi-hall/config" and made.birth_topic == "ha/status"
    assert json.loads(made.payload)["dev"]["name"] == "Hall camera"


def test_discovery_off_announces_the_empty_payload_that_removes_the_device() -> None:
    made = announcement(HomeAssistantSection(discovery=False), "pi", "edge-emotion/pi/", "0.1.0", FACE_LABELS)
    assert made.config_topic == "homeassistant/device/pi/config"
    assert made.payload == "" and made.birth_topic is None  # nothing to answer when off


def test_config_section_and_its_checks(tmp_path: Path, face_model: Path) -> None:
    model = [("face.model", str(face_model), "--model")]
    config = load_config(None, env={}, overrides=model)
    assert config.home_assistant == HomeAssistantSection(discovery=True, prefix="homeassistant", name="")
    config = load_config(None, env={"EDGE_EMOTION_HOME_ASSISTANT_DISCOVERY": "false"},
                         overrides=[*model, ("home_assistant.prefix", "ha/discovery", "--set")])
    assert config.home_assistant.discovery is False and config.home_assistant.prefix == "ha/discovery"
    for bad in ("", "home/#", "ha/", "/ha", "home assistant"):
        with pytest.raises(ConfigError, match=r"home_assistant\.prefix"):
            load_config(None, env={}, overrides=[*model, ("home_assistant.prefix", bad, "--set")])


# --- the templates, rendered against real messages --------------------------------------------

def test_dominant_emotion_is_the_most_confident_track() -> None:
    cmps = payload()["cmps"]
    several = state_text(track(1, "sad", 0.41, 0.1, 0.2), track(2, "happy", 0.83, 0.6, 0.3),
                         track(3, "fear", 0.52, -0.4, 0.7))
    assert sensor_state(cmps["emotion"], several) == "happy"
    assert sensor_state(cmps["confidence"], several) == 83.0
    assert (sensor_state(cmps["valence"], several), sensor_state(cmps["arousal"], several)) == (0.6, 0.3)
    assert sensor_state(cmps["faces"], several) == 3
    one = state_text(track(7, "surprise", 0.6543, -0.25, 0.9))
    assert sensor_state(cmps["emotion"], one) == "surprise"
    assert sensor_state(cmps["confidence"], one) == 65.4
    assert (sensor_state(cmps["valence"], one), sensor_state(cmps["arousal"], one)) == (-0.25, 0.9)
    # equal confidences: the first track, for every sensor alike
    tie = state_text(track(1, "angry", 0.5, -0.5, 0.5), track(2, "neutral", 0.5, 0.0, 0.0))
    assert sensor_state(cmps["emotion"], tie) == "angry" and sensor_state(cmps["valence"], tie) == -0.5


def test_no_face_means_unknown_never_a_stray_state() -> None:
    cmps = payload()["cmps"]
    empty = state_text()
    for key in ("emotion", "confidence", "valence", "arousal"):
        assert sensor_state(cmps[key], empty) is None, key
    assert sensor_state(cmps["faces"], empty) == 0
    for odd in ("{}", '{"tracks": null}', "[]", "null", "42", '{"tracks": [], "faces": 0}', "not json"):
        for key in ("emotion", "confidence", "valence", "arousal", "faces"):
            assert sensor_state(cmps[key], odd) in (None, 0), (key, odd)


def test_every_state_the_emotion_template_can_produce_is_an_option() -> None:
    template = payload()["cmps"]["emotion"]
    produced = set()
    rng = random.Random(12)
    labels = [*FACE_LABELS, "contempt", "Happy", ""]  # labels a future model might send: never passed on
    for _ in range(400):
        tracks = [{"track_id": i + 1, "emotion": rng.choice(labels), "confidence": round(rng.random(), 4),
                   "valence": 0.0, "arousal": 0.0, "box": {"x": 0, "y": 0, "w": 1, "h": 1}}
                  for i in range(rng.randint(0, 4))]
        produced.add(sensor_state(template, json.dumps({"faces": len(tracks), "tracks": tracks})))
    assert produced <= {*FACE_LABELS, None} and produced >= set(FACE_LABELS)
    for label in FACE_LABELS:
        assert sensor_state(template, state_text(track(1, label, 0.9))) == label


def test_voice_emotion_is_the_utterance_in_the_events_voice_object() -> None:
    template = payload(audio=True)["cmps"]["voice_emotion"]
    factory = messages()
    frame = {"index": 3, "media_time_s": 0.2, "width": 640, "height": 480}
    for i, label in enumerate(VOICE_LABELS):
        probabilities = np.full(8, 0.05) + np.eye(8)[i] * 0.6
        utterance = VoiceUtterance(0.35, 0.1)
        utterance.hear(VoiceReading(0.0, VadDecision(True, 0.6, -18.0, -60.0), probabilities))
        latest = VoiceReading(0.5, VadDecision(True, 0.6, -18.0, -60.0), np.roll(probabilities, 1))
        utterance.hear(latest)  # a second window that says otherwise: a tie, the utterance holds
        event = factory.event("heartbeat", track(1, "happy", 0.7), frame,
                              {"voice": voice_field(VOICE_LABELS, latest, 0.3, utterance)})
        assert event["voice"]["emotion"] != label
        assert sensor_state(template, json.dumps(event)) == label
    silent = VoiceReading(0.0, VadDecision(False, 0.0, -70.0, -72.0))
    unvoiced = factory.event("heartbeat", track(1, "happy", 0.7), frame,
                             {"voice": voice_field(VOICE_LABELS, silent, 0.3)})
    assert sensor_state(template, json.dumps(unvoiced)) is None  # no voice in the window: unknown
    no_audio = factory.event("appear", track(1, "happy", 0.7), frame)
    assert sensor_state(template, json.dumps(no_audio)) is None  # stale or no reading: unknown
    assert sensor_state(template, json.dumps({"voice": {"utterance": {"emotion": "bored"}}})) is None
    assert sensor_state(template, json.dumps({"voice": {"emotion": "sad"}})) is None  # a window alone
    assert sensor_state(template, json.dumps({"voice": {"utterance": "sad"}})) is None
    assert "expire_after" not in payload(audio=True, heartbeat_s=0)["cmps"]["voice_emotion"]


def test_speaker_emotion_comes_from_the_states_speaker_object() -> None:
    template = payload(audio=True)["cmps"]["speaker_emotion"]
    factory = messages()
    for label in FACE_LABELS:
        fused = factory.state([track(1, "happy", 0.7)],
                              {"track_id": 1, "emotion": label, "confidence": 0.6, "method": "product"})
        assert sensor_state(template, json.dumps(fused)) == label
    assert sensor_state(template, state_text(track(1, "happy", 0.7))) is None  # nobody heard: unknown
    assert sensor_state(template, state_text()) is None
    assert sensor_state(template, json.dumps({"speaker": {"emotion": "bored"}})) is None
    assert sensor_state(template, json.dumps({"speaker": "happy"})) is None


def test_stats_sensors() -> None:
    cmps = payload()["cmps"]
    assert sensor_state(cmps["fps"], stats_text(fps=14.93)) == 14.93
    assert sensor_state(cmps["cpu_temperature"], stats_text(cpu_temp_c=48.7)) == 48.7
    assert sensor_state(cmps["cpu_temperature"], stats_text(cpu_temp_c=None)) is None  # no thermal zone
    availability = payload()["availability"][0]
    online, offline = (json.dumps(messages().status(word, "0.1.0")) for word in ("online", "offline"))
    assert render(availability["value_template"], online) == availability["payload_available"]
    assert render(availability["value_template"], offline) == availability["payload_not_available"]


# --- the daemon on a real mosquitto --------------------------------------------------------------

class RawSubscriber:
    """Every message on `topic` as (topic, payload bytes, retained), empty payloads included."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._changed = threading.Condition()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"ha-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(LOOPBACK, port, keepalive=10)
        self.client.loop_start()
        assert subscribed.wait(10), f"could not subscribe to {topic}"

    def _on_message(self, client, userdata, message) -> None:
        with self._changed:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))
            self._changed.notify_all()

    def on(self, topic: str) -> list[tuple[bytes, bool]]:
        with self._changed:
            return [(body, retained) for t, body, retained in self.messages if t == topic]

    def wait_for(self, predicate: Callable[[RawSubscriber], bool], timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                if time.monotonic() >= deadline:
                    return False
                self._changed.wait(0.2)
        return True

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


CONFIG_TOPIC = "homeassistant/device/test-pi/config"


def base_args(face_model: Path, video: Path, broker: MosquittoBroker, *extra: str) -> tuple[str, ...]:
    return ("--model", str(face_model), "--source", str(video), "--broker", broker.url,
            "--device-id", "test-pi", *extra)


@pytest.mark.integration
def test_daemon_announces_itself_and_answers_home_assistant_coming_online(
        mosquitto: MosquittoBroker, face_model: Path, demo_video: Path) -> None:
    sub = RawSubscriber(mosquitto.port, "#")
    command = daemon_command(*base_args(face_model, demo_video, mosquitto, "--pace"))
    daemon = subprocess.Popen(command, cwd=ROOT, env=daemon_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert sub.wait_for(lambda s: len(s.on(CONFIG_TOPIC)) >= 1), "no discovery config"
        assert sub.wait_for(lambda s: len(s.on(PREFIX + "stats")) >= 1 and any(
            json.loads(body)["faces"] for body, _ in s.on(PREFIX + "state")))
        # Home Assistant's birth message, as it sends it after a restart
        sub.client.publish("homeassistant/status", "online", qos=1).wait_for_publish(5)
        assert sub.wait_for(lambda s: len(s.on(CONFIG_TOPIC)) >= 2), "discovery not re-published"
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=30)
    finally:
        daemon.kill()
    assert daemon.returncode == 0, stderr
    assert "Home Assistant came online" in stderr
    configs = [json.loads(body) for body, _ in sub.on(CONFIG_TOPIC)]
    assert configs[0] == configs[1] and rule_violations(configs[0]) == []
    assert configs[0]["dev"]["identifiers"] == ["edge-emotion-test-pi"]
    assert "voice_emotion" not in configs[0]["cmps"]  # audio is off
    # every state the daemon published, through every template: a state Home Assistant accepts
    cmps = configs[0]["cmps"]
    states = [body.decode() for body, _ in sub.on(PREFIX + "state")]
    seen = {sensor_state(cmps["emotion"], text) for text in states}
    assert seen - {None} and seen <= {*FACE_LABELS, None}
    for text in states:
        for key in ("confidence", "valence", "arousal", "faces"):
            value = sensor_state(cmps[key], text)
            assert value is None or isinstance(value, float)
    for body, _ in sub.on(PREFIX + "stats"):
        assert sensor_state(cmps["fps"], body.decode()) >= 0
        sensor_state(cmps["cpu_temperature"], body.decode())
    sub.close()
    late = RawSubscriber(mosquitto.port, CONFIG_TOPIC)  # Home Assistant starting later gets it retained
    assert late.wait_for(lambda s: len(s.messages) == 1, timeout=5)
    assert late.messages[0][2] is True and json.loads(late.messages[0][1]) == configs[0]
    late.close()


@pytest.mark.integration
def test_with_audio_the_voice_and_speaker_sensors_read_what_the_daemon_publishes(
        mosquitto: MosquittoBroker, face_model: Path, demo_video: Path, tmp_path: Path) -> None:
    """The demo clip with speech: the discovery carries both sensors, and every event and state the
    daemon published renders to one of their options or unknown, some of them to an emotion."""
    speech = write_speech(tmp_path / "talk.wav", min_seconds=13.0)
    if speech is None:
        speech = tmp_path / "talk.wav"
        soundfile.write(speech, syllables(13.0), RATE)
    sub = RawSubscriber(mosquitto.port, "#")
    result = run_daemon(*base_args(face_model, demo_video, mosquitto, "--audio-file", str(speech)))
    assert result.returncode == 0, result.stderr
    assert sub.wait_for(lambda s: any(json.loads(body).get("status") == "offline"
                                      for body, _ in s.on(PREFIX + "status")))
    sub.close()
    cmps = json.loads(sub.on(CONFIG_TOPIC)[0][0])["cmps"]
    assert {"voice_emotion", "speaker_emotion"} <= set(cmps)
    states = [body.decode() for body, _ in sub.on(PREFIX + "state")]
    events = [body.decode() for body, _ in sub.on(PREFIX + "events")]
    speakers = {sensor_state(cmps["speaker_emotion"], text) for text in states}
    voices = {sensor_state(cmps["voice_emotion"], text) for text in events}
    assert speakers - {None} and speakers <= {*FACE_LABELS, None}
    assert voices - {None} and voices <= {*VOICE_LABELS, None}
    assert sensor_state(cmps["speaker_emotion"], states[-1]) is None  # the last state: nobody is heard


@pytest.mark.integration
def test_discovery_off_empties_the_retained_config(mosquitto: MosquittoBroker, face_model: Path,
                                                   demo_video: Path) -> None:
    on = run_daemon(*base_args(face_model, demo_video, mosquitto))
    assert on.returncode == 0, on.stderr
    before = RawSubscriber(mosquitto.port, CONFIG_TOPIC)
    assert before.wait_for(lambda s: len(s.messages) == 1, timeout=5) and before.messages[0][1]  # retained
    off = run_daemon(*base_args(face_model, demo_video, mosquitto, "--set", "home_assistant.discovery=false"))
    assert off.returncode == 0, off.stderr
    assert before.wait_for(lambda s: len(s.messages) == 2, timeout=5)
    assert before.messages[1][1] == b""  # the removal Home Assistant acts on
    before.close()
    after = RawSubscriber(mosquitto.port, CONFIG_TOPIC)
    time.sleep(1.0)
    assert after.messages == []  # nothing retained any more
    after.close()
