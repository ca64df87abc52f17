"""Home Assistant MQTT discovery: the one retained message that makes the daemon a device there.

Home Assistant's device-based discovery (https://www.home-assistant.io/integrations/mqtt/, "Device
discovery payload"): one retained JSON message on `<prefix>/device/<object id>/config` holding
the device (`dev`), the software that announced it (`o`, required for device discovery) and its
components (`cmps`, each with its platform `p` and a `unique_id`). The entities read the daemon's
own retained topics through value templates, so nothing is published twice:

- `state`: dominant emotion (an enum sensor over the face labels), its confidence, valence and
  arousal, all of the most confident track (a person with several faces in view gets the most
  confident one), and the number of faces;
- `events` (audio on only): the voice emotion of the utterance heard now (`voice.utterance` of the
  latest event: the average of its readings, not the last 2 s window alone, which flipped 37
  times per voiced minute); `state` does not carry the voice, and events come only while a face is
  tracked, so it expires after two heartbeats;
- `state` again (audio and fusion on): the speaker's fused emotion, `state.speaker`, which the
  daemon keeps current (it publishes `state` when someone starts or stops being heard), so it is
  unknown while nobody speaks and needs no expiry;
- `stats`: frame rate and CPU temperature (diagnostic).

Availability is the daemon's `status` topic (JSON, hence the value template). An enum sensor accepts
only its options, or `None` for unknown: every template here ends in one of those. A template that
gets something it does not expect also says `None`, never an odd string.

Switching discovery off (`home_assistant.discovery = false`) publishes the empty retained payload
instead, which removes the device from Home Assistant and clears the retained config at the broker.

`discovery_payload` is a pure function (section, ids, topics, labels → dict), tested without a
broker; the publisher only sends what `announcement` gives it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from device.config import HomeAssistantSection

ORIGIN_NAME = "edge-emotion"
PROJECT_URL = "https://github.com/edge-emotion/edge-emotion"
ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")  # Home Assistant's character class for discovery ids
LABEL_PATTERN = re.compile(r"^[a-z_]+$")  # labels are quoted into templates: keep them plain words

# The most confident track of a `state` message, or none (no faces, or no tracks list at all).
# `max` keeps the first of equal maxima, so every template below picks the same track.
_BEST_TRACK = ("{%- set tracks = value_json.tracks if value_json is mapping and 'tracks' in value_json "
               "else [] -%}{%- set best = tracks | max(attribute='confidence') if tracks else none -%}")


@dataclass(frozen=True)
class Announcement:
    """What the publisher sends after every connect: `payload` on `config_topic` (retained; empty
    removes the device), and again whenever `birth_topic` says `online` (None: nothing to answer)."""

    config_topic: str
    payload: str
    birth_topic: str | None


def object_id(device_id: str) -> str:
    """The device id as Home Assistant allows it in a topic and an id ([a-zA-Z0-9_-]); an id that
    needed changing gets a short hash of the original, so two ids never land on the same object."""
    safe = ID_UNSAFE.sub("_", device_id)
    if safe != device_id:
        safe += "_" + hashlib.sha256(device_id.encode()).hexdigest()[:8]
    return safe


def config_topic(section: HomeAssistantSection, device_id: str) -> str:
    return f"{section.prefix}/device/{object_id(device_id)}/config"


def _one_of(labels: Sequence[str], name: str) -> str:
    """The template variable `name` when it is one of `labels`, else none (an enum's unknown)."""
    for label in labels:
        if not LABEL_PATTERN.match(label):
            raise ValueError(f"label {label!r} cannot be quoted into a template")
    options = "[" + ", ".join(f"'{label}'" for label in labels) + "]"
    return f"{{{{ {name} if {name} in {options} else none }}}}"


def _emotion_of(path: Sequence[str], labels: Sequence[str]) -> str:
    """The `emotion` of the message's object at `path` (keys, outermost first) when it is one of
    `labels`, else none (an object missing on the way, no emotion in it, or a label the sensor does
    not know)."""
    steps = "".join(f"{{%- set obj = obj[{key!r}] if obj is mapping and {key!r} in obj else {{}} -%}}"
                    for key in path)
    return ("{%- set obj = value_json -%}" + steps
            + "{%- set label = obj.emotion if obj is mapping and 'emotion' in obj else none -%}"
            + _one_of(labels, "label"))


def _of_best(expression: str) -> str:
    return _BEST_TRACK + f"{{{{ ({expression}) if best else none }}}}"


def discovery_payload(section: HomeAssistantSection, device_id: str, topic_prefix: str, version: str,
                      face_labels: Sequence[str], voice_labels: Sequence[str] | None = None,
                      heartbeat_s: float = 10.0, fused: bool = False) -> dict:
    """The device discovery message. `topic_prefix` is the daemon's own (device id filled in);
    `voice_labels` None leaves the voice sensor out (audio off); `heartbeat_s` is events.heartbeat_s
    (0: events only on change, so the voice reading never expires); `fused` adds the speaker's
    fused emotion (audio on and fusion not "none")."""
    safe = object_id(device_id)

    def uid(key: str) -> str:
        return f"edge_emotion_{safe}_{key}"

    state, stats = topic_prefix + "state", topic_prefix + "stats"
    components: dict[str, dict] = {
        "emotion": {
            "p": "sensor", "unique_id": uid("emotion"), "name": "Emotion", "icon": "mdi:emoticon-outline",
            "state_topic": state, "device_class": "enum", "options": list(face_labels),
            "value_template": (_BEST_TRACK + "{%- set label = best.emotion if best and 'emotion' in best "
                               "else none -%}" + _one_of(face_labels, "label")),
        },
        "confidence": {
            "p": "sensor", "unique_id": uid("confidence"), "name": "Emotion confidence",
            "state_topic": state, "unit_of_measurement": "%", "state_class": "measurement",
            "suggested_display_precision": 0,
            "value_template": _of_best("(best.confidence * 100) | round(1)"),
        },
        "valence": {
            "p": "sensor", "unique_id": uid("valence"), "name": "Valence",
            "icon": "mdi:emoticon-happy-outline", "state_topic": state, "state_class": "measurement",
            "suggested_display_precision": 2,
            "value_template": _of_best("best.valence"),
        },
        "arousal": {
            "p": "sensor", "unique_id": uid("arousal"), "name": "Arousal",
            "icon": "mdi:lightning-bolt-outline", "state_topic": state, "state_class": "measurement",
            "suggested_display_precision": 2,
            "value_template": _of_best("best.arousal"),
        },
        "faces": {
            "p": "sensor", "unique_id": uid("faces"), "name": "Faces", "icon": "mdi:face-recognition",
            "state_topic": state, "state_class": "measurement",
            "value_template": "{{ value_json.faces if value_json is mapping and 'faces' in value_json "
                              "else none }}",
        },
    }
    if voice_labels is not None:
        voice = {
            "p": "sensor", "unique_id": uid("voice_emotion"), "name": "Voice emotion",
            "icon": "mdi:account-voice", "state_topic": topic_prefix + "events", "device_class": "enum",
            "options": list(voice_labels),
            "value_template": _emotion_of(("voice", "utterance"), voice_labels),
        }
        if heartbeat_s > 0:
            voice["expire_after"] = math.ceil(2 * heartbeat_s) + 1
        components["voice_emotion"] = voice
    if fused:
        components["speaker_emotion"] = {
            "p": "sensor", "unique_id": uid("speaker_emotion"), "name": "Speaker emotion (face and voice)",
            "icon": "mdi:account-voice", "state_topic": state, "device_class": "enum",
            "options": list(face_labels),
            "value_template": _emotion_of(("speaker",), face_labels),
        }
    components["fps"] = {
        "p": "sensor", "unique_id": uid("fps"), "name": "Frame rate", "icon": "mdi:speedometer",
        "state_topic": stats, "unit_of_measurement": "fps", "state_class": "measurement",
        "entity_category": "diagnostic", "suggested_display_precision": 1,
        "value_template": "{{ value_json.fps if value_json is mapping and 'fps' in value_json else none }}",
    }
    components["cpu_temperature"] = {
        "p": "sensor", "unique_id": uid("cpu_temperature"), "name": "CPU temperature",
        "state_topic": stats, "device_class": "temperature", "unit_of_measurement": "°C",
        "state_class": "measurement", "entity_category": "diagnostic", "suggested_display_precision": 1,
        # null off a Pi (no thermal zone): renders None, which Home Assistant shows as unknown
        "value_template": "{{ value_json.cpu_temp_c if value_json is mapping and 'cpu_temp_c' in value_json "
                          "else none }}",
    }
    return {
        "dev": {"identifiers": [f"edge-emotion-{safe}"], "name": section.name or device_id,
                "manufacturer": "edge-emotion", "model": "edge-emotion", "sw_version": version},
        "o": {"name": ORIGIN_NAME, "sw_version": version, "support_url": PROJECT_URL},
        "availability": [{"topic": topic_prefix + "status", "value_template": "{{ value_json.status }}",
                          "payload_available": "online", "payload_not_available": "offline"}],
        "cmps": components,
    }


def announcement(section: HomeAssistantSection, device_id: str, topic_prefix: str, version: str,
                 face_labels: Sequence[str], voice_labels: Sequence[str] | None = None,
                 heartbeat_s: float = 10.0, fused: bool = False) -> Announcement:
    """The discovery message ready to send, or with discovery off the empty one that removes it."""
    topic = config_topic(section, device_id)
    if not section.discovery:
        return Announcement(topic, "", None)
    payload = discovery_payload(section, device_id, topic_prefix, version, face_labels, voice_labels,
                                heartbeat_s, fused)
    return Announcement(topic, json.dumps(payload, separators=(",", ":"), ensure_ascii=False),
                        f"{section.prefix}/status")
