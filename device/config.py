"""The one configuration object: TOML file, then EDGE_EMOTION_<SECTION>_<KEY> environment
overrides, then command-line flags, validated as a whole at start-up.

Every key has a default that works on a Raspberry Pi with its camera, so an empty file is a valid
configuration. See `device/example.toml` for every key with a comment. The MQTT password is not a
key: it comes from `mqtt.password_file` or the EDGE_EMOTION_MQTT_PASSWORD variable only, so it
never sits in a command line (visible in `ps`) or in a config file that gets pasted into a bug
report.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from device.config_loading import ConfigError, check_value, field_hints, parse_text, unknown_key_error

ENV_PREFIX = "EDGE_EMOTION_"
PASSWORD_ENV = "EDGE_EMOTION_MQTT_PASSWORD"
DEFAULT_FACE_MODEL = "models/face_mini_xception_int8.tflite"


@dataclass(frozen=True)
class DeviceSection:
    id: str = ""  # empty: the host name
    num_threads: int = 1  # for the TFLite interpreter and OpenCV alike


@dataclass(frozen=True)
class SourceSection:
    uri: str = "picamera2"
    kind: Literal["auto", "picamera2", "opencv", "images"] = "auto"
    width: int = 640
    height: int = 480
    fps: float = 30.0
    pace: bool = False
    timeout_s: float = 10.0  # a live source silent this long has failed (exit 1, service restarts)


@dataclass(frozen=True)
class DetectorSection:
    kind: Literal["haar", "blazeface"] = "blazeface"  # blazeface: [blazeface]; haar: the keys below
    cascade: str = ""  # empty: OpenCV's haarcascade_frontalface_alt2.xml
    detect_width: int = 320
    scale_factor: float = 1.2
    min_neighbors: int = 3
    min_size: int = 40
    every_n_frames: int = 6  # docs/device.md, "Detection rounds": every 8 found fewer faces, later
    crop_margin: float = 0.0  # FER2013's crops are the Haar box itself (docs/device.md, Crop framing)


@dataclass(frozen=True)
class BlazeFaceSection:
    model: str = "models/detectors/face_detection_short_range.tflite"
    min_score: float = 0.65  # MediaPipe uses 0.5; see device/example.toml for what each found
    nms_iou: float = 0.3  # boxes overlapping more than this are averaged into one (MediaPipe's)
    # The FER2013 square around BlazeFace's box, in box widths (docs/device.md, Crop framing)
    framing_scale: float = 1.18
    framing_offset_x: float = 0.0
    framing_offset_y: float = -0.10


@dataclass(frozen=True)
class TrackerSection:
    iou_threshold: float = 0.3
    max_missed: int = 2
    follow: bool = True
    follow_min_score: float = 0.7  # also: a track Haar misses ends at once when its match is below this
    follow_lost_frames: int = 2  # follows in a row below follow_min_score end a track between rounds (0: off)


@dataclass(frozen=True)
class SmoothingSection:
    alpha: float = 0.15  # a plain mean over a track's first 1/alpha frames, then this EMA
    margin: float = 0.1


@dataclass(frozen=True)
class EventsSection:
    heartbeat_s: float = 10.0
    out: str = ""
    snapshot: bool = False


@dataclass(frozen=True)
class MqttSection:
    url: str = "mqtt://localhost:1883"
    topic_prefix: str = "edge-emotion/{device_id}/"
    client_id: str = ""
    keepalive_s: int = 30
    username: str = ""
    password_file: str = ""
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    queue_size: int = 1000
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    stats_every_s: float = 10.0
    flush_timeout_s: float = 5.0
    connect_timeout_s: float = 10.0  # a broker silent this long after CONNECT gets a warning


@dataclass(frozen=True)
class FaceSection:
    model: str = DEFAULT_FACE_MODEL
    card: str = ""  # empty: the model path with .json
    flip_tta: bool = True
    inner_view: float = 0.87  # a second, centred view of this fraction of the crop's side; 0: none
    every_n_frames: int = 2  # classify each track on every n-th frame (a new track on its first)


@dataclass(frozen=True)
class GateSection:
    enabled: bool = False  # vet each new detection with the face gate before it starts a track
    model: str = "models/face_gate_int8.tflite"
    threshold: float = 0.5  # P(face) a new detection needs (device/vision/face_gate.py)


@dataclass(frozen=True)
class LoggingSection:
    level: Literal["debug", "info", "warning", "error"] = "info"
    file: str = ""  # empty: stderr (journald under systemd)


@dataclass(frozen=True)
class AudioSection:
    enabled: bool = False
    source: Literal["file", "pyaudio"] = "file"
    file: str = ""
    device: str = ""
    required: bool = False
    hop_s: float = 0.5  # the window itself is the voice model's (its card), not a setting
    # The gate's absolute level: vad_room_margin_db above the background of the last 8 s, between the
    # quiet-room and noisy-room bounds (docs/voice.md, "The ear end to end": a fixed -50 left 12 of 240
    # clips unheard, a fixed -55 let babble through)
    vad_threshold_db: float = -50.0
    vad_quiet_threshold_db: float = -60.0
    vad_room_margin_db: float = 20.0
    vad_margin_db: float = 6.0  # active frames rise this far above the window's floor (steady noise: < 3 dB)
    # An utterance's voice and fused emotions average its readings (a plain mean over the first
    # 1/alpha, then this EMA), so one window's guess does not flip them: docs/voice.md, "Utterances".
    utterance_alpha: float = 0.35
    model: str = "models/voice_cnn_int8.tflite"


@dataclass(frozen=True)
class FusionSection:
    method: Literal["product", "bel", "none"] = "product"
    face_weight: float = 1.0
    voice_weight: float = 1.0
    stale_after_s: float = 2.0
    bel_model: str = "models/fusion_bel.json"


@dataclass(frozen=True)
class HomeAssistantSection:
    discovery: bool = True  # false publishes the empty retained config, which removes the device
    prefix: str = "homeassistant"  # Home Assistant's discovery prefix
    name: str = ""  # the device's name in Home Assistant; empty: the device id


@dataclass(frozen=True)
class AnnotateSection:
    out: str = ""  # --annotate: write the frames with boxes and emotions drawn on them (.mp4 or .avi)
    allow_live: bool = False  # a live camera's pictures of people go to disk only when this says so


@dataclass(frozen=True)
class Config:
    device: DeviceSection = DeviceSection()
    source: SourceSection = SourceSection()
    detector: DetectorSection = DetectorSection()
    blazeface: BlazeFaceSection = BlazeFaceSection()
    tracker: TrackerSection = TrackerSection()
    smoothing: SmoothingSection = SmoothingSection()
    events: EventsSection = EventsSection()
    mqtt: MqttSection = MqttSection()
    face: FaceSection = FaceSection()
    gate: GateSection = GateSection()
    logging: LoggingSection = LoggingSection()
    audio: AudioSection = AudioSection()
    fusion: FusionSection = FusionSection()
    home_assistant: HomeAssistantSection = HomeAssistantSection()
    annotate: AnnotateSection = AnnotateSection()
    password: str | None = field(default=None, repr=False, compare=False)

    @property
    def device_id(self) -> str:
        return self.device.id or os.uname().nodename

    @property
    def topic_prefix(self) -> str:
        return self.mqtt.topic_prefix.format(device_id=self.device_id)

    @property
    def card_path(self) -> Path:
        return Path(self.face.card) if self.face.card else Path(self.face.model).with_suffix(".json")


SECTIONS: dict[str, type] = {name: hint for name, hint in field_hints(Config).items() if name != "password"}


class _Layers:
    """Raw values per section plus where each one came from, for messages that point at it."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
        self.origin: dict[str, str] = {}

    def put(self, section: str, key: str, value: Any, origin: str) -> None:
        self.values[section][key] = value
        self.origin[f"{section}.{key}"] = origin

    def where(self, section: str, key: str) -> str:
        return f"{section}.{key} (from {self.origin.get(f'{section}.{key}', 'the default')})"


def load_config(path: str | Path | None = None, env: dict[str, str] | None = None,
                overrides: list[tuple[str, str, str]] | None = None) -> Config:
    """Build and validate the configuration.

    `overrides` are (dotted key, text value, flag that set it) from the command line; text is parsed
    to the key's type exactly like an environment variable.
    """
    env = dict(os.environ) if env is None else env
    layers = _Layers()
    if path is not None:
        _read_toml(Path(path), layers)
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and name != PASSWORD_ENV:
            section, key = _split_env_name(name)
            hint = field_hints(SECTIONS[section])[key]
            origin = f"environment {name}"
            layers.put(section, key, parse_text(hint, env[name], origin), origin)
    for dotted, text, flag in overrides or []:
        section, _, key = dotted.partition(".")
        if section not in SECTIONS:
            raise ConfigError(f"{flag}: unknown section {section!r} (sections: {', '.join(SECTIONS)})")
        hints = field_hints(SECTIONS[section])
        if key not in hints:
            raise unknown_key_error(f"{flag} [{section}]", key, hints)
        layers.put(section, key, parse_text(hints[key], text, f"{flag} {dotted}"), flag)
    sections = {name: cls(**layers.values[name]) for name, cls in SECTIONS.items()}
    config = Config(**sections, password=_password(sections["mqtt"], env, layers))
    _validate(config, layers)
    return config


def _read_toml(path: Path, layers: _Layers) -> None:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; pass an existing file with --config") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text; save it as UTF-8 (a TOML file is text, "
                          "see device/example.toml)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for section, table in data.items():
        if section not in SECTIONS:
            raise ConfigError(f"{path}: unknown section [{section}] (sections: {', '.join(SECTIONS)})")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {section} must be a [{section}] table, not a value")
        hints = field_hints(SECTIONS[section])
        for key, value in table.items():
            if key not in hints:
                raise unknown_key_error(f"{path} [{section}]", key, hints)
            layers.put(section, key, check_value(hints[key], value, f"{path} [{section}] {key}"), str(path))


def _split_env_name(name: str) -> tuple[str, str]:
    rest = name[len(ENV_PREFIX):].lower()
    for section in sorted(SECTIONS, key=len, reverse=True):
        if rest.startswith(section + "_"):
            key = rest[len(section) + 1:]
            hints = field_hints(SECTIONS[section])
            if key in hints:
                return section, key
            raise unknown_key_error(f"environment {name} [{section}]", key, hints)
    raise ConfigError(f"environment {name}: no section matches (sections: {', '.join(SECTIONS)}); "
                      f"unset it or name it {ENV_PREFIX}<SECTION>_<KEY>")


def _password(mqtt: MqttSection, env: dict[str, str], layers: _Layers) -> str | None:
    if PASSWORD_ENV in env:
        return env[PASSWORD_ENV]
    if not mqtt.password_file:
        return None
    try:
        return Path(mqtt.password_file).read_text().rstrip("\r\n")
    except UnicodeDecodeError:
        where = layers.where("mqtt", "password_file")
        raise ConfigError(f"{where}: {mqtt.password_file} is not UTF-8 text; write the password as one "
                          "line of text") from None
    except OSError as exc:
        where = layers.where("mqtt", "password_file")
        raise ConfigError(f"{where}: cannot read {mqtt.password_file} ({exc.strerror}); "
                          "check the path and that the daemon's user may read it") from None


# Every number's legal range, in one place: the validation below, the error messages and the
# comments of device/example.toml (checked by a test) all come from here. Upper bounds matter as
# much as lower ones: `detector.scale_factor = 1e20` once made the daemon allocate gigabytes, and a
# thread count of 99999999999 crashed OpenCV.
RANGES: dict[str, tuple[float, float]] = {
    "device.num_threads": (1, 16),
    "source.width": (16, 7680),
    "source.height": (16, 4320),
    "source.fps": (0.1, 240),
    "source.timeout_s": (0.5, 600),
    "detector.detect_width": (64, 1920),
    "detector.scale_factor": (1.01, 2.0),
    "detector.min_neighbors": (0, 50),
    "detector.min_size": (8, 1024),
    "detector.every_n_frames": (1, 300),
    "detector.crop_margin": (0.0, 1.0),
    "face.inner_view": (0.0, 0.99),
    "face.every_n_frames": (1, 30),
    "blazeface.min_score": (0.05, 0.99),
    "blazeface.nms_iou": (0.05, 0.95),
    "blazeface.framing_scale": (0.5, 3.0),
    "blazeface.framing_offset_x": (-1.0, 1.0),
    "blazeface.framing_offset_y": (-1.0, 1.0),
    "tracker.iou_threshold": (0.01, 0.99),
    "tracker.max_missed": (0, 100),
    "tracker.follow_min_score": (0.0, 1.0),
    "tracker.follow_lost_frames": (0, 100),
    "smoothing.alpha": (0.01, 1.0),
    "smoothing.margin": (0.0, 0.99),
    "events.heartbeat_s": (0, 86400),
    "mqtt.keepalive_s": (5, 3600),
    "mqtt.queue_size": (1, 1_000_000),
    "mqtt.reconnect_min_s": (0.1, 3600),
    "mqtt.reconnect_max_s": (0.1, 3600),
    "mqtt.stats_every_s": (0.1, 3600),
    "mqtt.flush_timeout_s": (0, 600),
    "mqtt.connect_timeout_s": (1, 120),
    "audio.hop_s": (0.05, 2.0),
    "audio.vad_threshold_db": (-120, 0),
    "audio.vad_margin_db": (1, 40),
    "audio.vad_quiet_threshold_db": (-120, 0),
    "audio.vad_room_margin_db": (0, 60),
    "audio.utterance_alpha": (0.01, 1.0),
    "fusion.face_weight": (0, 10),
    "fusion.voice_weight": (0, 10),
    "fusion.stale_after_s": (0.1, 60),
    "gate.threshold": (0.01, 0.99),
}
# Characters that would change what a topic means (wildcards, levels) or that brokers refuse.
TOPIC_UNSAFE = set("+#/\x00") | {" "}
HOST_PATTERN = re.compile(r"^[A-Za-z0-9._:-]+$|^\[[0-9A-Fa-f:.]+\]$")
PEM_MARKER = b"-----BEGIN "


def range_text(key: str) -> str:
    """How example.toml and error messages state a key's range, e.g. `1 to 16`."""
    return " to ".join(f"{int(v)}" if float(v).is_integer() else f"{v:g}" for v in RANGES[key])


class _Checker:
    """Range and existence checks that a type alone cannot express, reported against their origin."""

    def __init__(self, layers: _Layers) -> None:
        self.layers = layers

    def require(self, ok: bool, section: str, key: str, message: str) -> None:
        if not ok:
            raise ConfigError(f"{self.layers.where(section, key)}: {message}")

    def in_range(self, config: Config) -> None:
        for dotted in RANGES:
            section, key = dotted.split(".")
            value = getattr(getattr(config, section), key)
            low, high = RANGES[dotted]
            self.require(low <= value <= high, section, key,
                         f"must be in the range {range_text(dotted)}, not {value!r}")

    def existing_file(self, section: str, key: str, path: str, what: str, todo: str = "") -> None:
        todo = todo or f"fix the path in {section}.{key}"
        self.require(Path(path).is_file(), section, key,
                     f"{what} {path} does not exist or is not a file; {todo}")

    def writable_file_path(self, section: str, key: str, path: str) -> None:
        target = Path(path)
        self.require(not target.is_dir(), section, key, f"{path} is a folder; give a file path inside it")
        self.require(target.resolve().parent.is_dir(), section, key, f"folder of {path} does not exist")

    def pem_file(self, section: str, key: str, path: str) -> None:
        self.existing_file(section, key, path, "TLS file")
        try:
            head = Path(path).read_bytes()[:4096]
        except OSError as exc:
            self.require(False, section, key, f"cannot read {path} ({exc.strerror})")
        self.require(PEM_MARKER in head, section, key,
                     f"{path} is not a PEM file (no '-----BEGIN' line); give the certificate or key in "
                     "PEM format (convert DER with `openssl x509 -inform der -in FILE -out FILE.pem`)")


def _validate(config: Config, layers: _Layers) -> None:
    check = _Checker(layers)
    require, existing_file = check.require, check.existing_file
    c = config
    check.in_range(c)
    require(c.source.uri != "", "source", "uri", "is empty; give picamera2, a camera index, a file or a URL")
    if c.device.id:
        require(not (set(c.device.id) & TOPIC_UNSAFE), "device", "id",
                f"{c.device.id!r} may not contain spaces, '/', '+' or '#' (they change the MQTT topics); "
                "use letters, digits, '-' and '_'")
    if c.detector.cascade:
        existing_file("detector", "cascade", c.detector.cascade, "Haar cascade")
    if c.detector.kind == "blazeface":
        existing_file("blazeface", "model", c.blazeface.model, "face detector model",
                      "point it at models/detectors/face_detection_short_range.tflite or set detector.kind = "
                      '"haar"')
    if c.events.out not in ("", "-"):
        check.writable_file_path("events", "out", c.events.out)
    existing_file("face", "model", c.face.model, "model file",
                  "build one with `make train quantize` or point face.model (--model) at a .tflite")
    if c.face.card:
        existing_file("face", "card", c.face.card, "model card")
    if c.gate.enabled:
        existing_file("gate", "model", c.gate.model, "face gate model",
                      "point gate.model at face_gate_int8.tflite, or set gate.enabled = false")
    _validate_mqtt(c, check)
    if c.logging.file:
        check.writable_file_path("logging", "file", c.logging.file)
    if c.annotate.out:
        check.writable_file_path("annotate", "out", c.annotate.out)
        require(Path(c.annotate.out).suffix.lower() in (".mp4", ".avi"), "annotate", "out",
                f"{c.annotate.out} must end in .mp4 or .avi")
    _validate_voice(c, check)
    prefix = c.home_assistant.prefix
    require(prefix != "" and prefix.strip("/") == prefix and not (set(prefix) & (TOPIC_UNSAFE - {"/"})),
            "home_assistant", "prefix", f"{prefix!r} must be a topic without the wildcards + and #, spaces, "
            "or a leading or trailing '/' (Home Assistant's default is homeassistant)")


def redacted(url: str) -> str:
    """The URL without any user name or password, for messages (a password never reaches a log)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}<credentials removed>@{rest.rpartition('@')[2]}" if "@" in rest else url


def _validate_mqtt(c: Config, check: _Checker) -> None:
    require = check.require
    m = c.mqtt
    if m.url:
        shown = redacted(m.url)
        require("@" not in m.url.partition("://")[2], "mqtt", "url",
                f"{shown}: credentials do not go in the URL; set mqtt.username and put the password in "
                "mqtt.password_file or EDGE_EMOTION_MQTT_PASSWORD")
        try:
            parts = urlsplit(m.url)
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"{check.layers.where('mqtt', 'url')}: {shown} does not parse ({exc}); "
                              "write mqtt://host:1883") from None
        require(parts.scheme in ("mqtt", "mqtts"), "mqtt", "url",
                f"{shown} must start with mqtt:// or mqtts:// (e.g. mqtt://localhost:1883)")
        require(bool(parts.hostname), "mqtt", "url", f"{shown} has no host name (e.g. mqtt://localhost:1883)")
        require(bool(HOST_PATTERN.match(parts.netloc.rpartition(":")[0] if port else parts.netloc)),
                "mqtt", "url", f"{shown}: the host name has characters a host name cannot have")
        require(port is None or 0 < port < 65536, "mqtt", "url", f"{shown} has an invalid port")
        require(parts.path in ("", "/") and not parts.query, "mqtt", "url",
                f"{shown}: an MQTT URL has no path; write mqtt://host:port")
    require("+" not in m.topic_prefix and "#" not in m.topic_prefix, "mqtt", "topic_prefix",
            "must not contain the MQTT wildcards + or #")
    try:
        m.topic_prefix.format(device_id="x")
    except (KeyError, IndexError, ValueError):
        require(False, "mqtt", "topic_prefix", "may only use the placeholder {device_id}")
    if m.url:
        require(not (set(c.device_id) & TOPIC_UNSAFE), "device", "id",
                f"the host name {c.device_id!r} cannot be a topic level; set device.id")
    require(m.reconnect_max_s >= m.reconnect_min_s, "mqtt", "reconnect_max_s", "must be >= reconnect_min_s")
    for key in ("tls_ca", "tls_cert", "tls_key"):
        if getattr(m, key):
            check.pem_file("mqtt", key, getattr(m, key))
    require(bool(m.tls_cert) == bool(m.tls_key), "mqtt", "tls_key", "tls_cert and tls_key go together")


def _validate_voice(c: Config, check: _Checker) -> None:
    require, existing_file = check.require, check.existing_file
    a, f = c.audio, c.fusion
    require(a.vad_quiet_threshold_db <= a.vad_threshold_db, "audio", "vad_quiet_threshold_db",
            f"{a.vad_quiet_threshold_db:g} dBFS is above vad_threshold_db ({a.vad_threshold_db:g} dBFS); the "
            "quiet-room bound must be the lower one (set the two equal for a fixed gate)")
    if a.enabled:
        if a.source == "file":
            require(a.file != "", "audio", "file", "is empty; give a WAV/FLAC path or set audio.source")
            existing_file("audio", "file", a.file, "audio file")
        existing_file("audio", "model", a.model, "voice model")
        if f.method == "bel":
            existing_file("fusion", "bel_model", f.bel_model, "BEL fusion model")
