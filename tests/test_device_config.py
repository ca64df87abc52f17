"""Configuration: precedence, and one clear line with exit code 2 for every bad case in the issue."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from device.config import SECTIONS, Config, ConfigError, load_config
from device.config_loading import field_hints
from tests.conftest import ROOT, run_daemon

EXAMPLE = ROOT / "device" / "example.toml"


@pytest.fixture
def model_args(face_model: Path) -> list[tuple[str, str, str]]:
    return [("face.model", str(face_model), "--model")]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return path


def test_defaults_and_precedence_toml_env_cli(tmp_path: Path, model_args) -> None:
    path = write(tmp_path, "[smoothing]\nalpha = 0.5\nmargin = 0.2\n[detector]\nevery_n_frames = 4\n")
    env = {"EDGE_EMOTION_SMOOTHING_ALPHA": "0.6", "EDGE_EMOTION_DETECTOR_MIN_NEIGHBORS": "3"}
    config = load_config(path, env=env, overrides=[*model_args, ("smoothing.alpha", "0.7", "--set")])
    assert config.smoothing.alpha == 0.7  # CLI beats env beats file
    assert config.smoothing.margin == 0.2  # file beats default
    assert config.detector.min_neighbors == 3 and config.detector.every_n_frames == 4
    assert config.tracker == Config().tracker
    assert config.fusion.method == "product" and config.audio.enabled is False


def test_voice_sections_are_validated_now(tmp_path: Path, model_args) -> None:
    config = load_config(write(tmp_path, '[fusion]\nmethod = "bel"\nface_weight = 2\n'), env={},
                         overrides=model_args)
    assert config.fusion.face_weight == 2.0 and config.audio.model == "models/voice_cnn_int8.tflite"
    with pytest.raises(ConfigError, match=r"\[fusion\] method = 'vote' must be 'product' or 'bel' or 'none'"):
        load_config(write(tmp_path, '[fusion]\nmethod = "vote"\n'), env={}, overrides=model_args)
    with pytest.raises(ConfigError, match=r"audio\.file.*does not exist"):
        load_config(write(tmp_path, '[audio]\nenabled = true\nfile = "nope.wav"\n'), env={},
                    overrides=model_args)
    # the window is the voice model's (its card), not a setting
    with pytest.raises(ConfigError, match=r"\[audio\]: unknown key 'window_s'"):
        load_config(write(tmp_path, "[audio]\nwindow_s = 3.0\n"), env={}, overrides=model_args)
    with pytest.raises(ConfigError, match=r"vad_quiet_threshold_db.*-45 dBFS is above vad_threshold_db"):
        load_config(write(tmp_path, "[audio]\nvad_quiet_threshold_db = -45\n"), env={}, overrides=model_args)


def test_password_comes_from_env_or_file_and_is_never_in_repr(tmp_path: Path, model_args) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    config = load_config(write(tmp_path, f'[mqtt]\nusername = "pi"\npassword_file = "{secret}"\n'), env={},
                         overrides=model_args)
    assert config.password == "hunter2" and "hunter2" not in repr(config)
    config = load_config(None, env={"EDGE_EMOTION_MQTT_PASSWORD": "from-env"}, overrides=model_args)
    assert config.password == "from-env"
    with pytest.raises(ConfigError, match="unknown key 'password'"):
        load_config(write(tmp_path, '[mqtt]\npassword = "plain"\n'), env={}, overrides=model_args)


@pytest.mark.parametrize(("text", "env", "message"), [
    ("[detector]\nmin_neighbours = 3\n", {}, r"edge\.toml \[detector\]: unknown key 'min_neighbours'"),
    ("[camera]\nfps = 3\n", {}, r"unknown section \[camera\]"),
    ("[smoothing]\nalpha = \"high\"\n", {}, r"edge\.toml \[smoothing\] alpha = 'high' must be a number"),
    ("[detector]\nevery_n_frames = 2.5\n", {}, r"every_n_frames = 2.5 must be an integer"),
    ("[events]\nsnapshot = 1\n", {}, r"snapshot = 1 must be true or false"),
    ("[smoothing]\nalpha = 1.5\n", {},
     r"smoothing\.alpha \(from .*edge\.toml\): must be in the range 0\.01 to 1, not 1\.5"),
    ("", {"EDGE_EMOTION_SMOOTHING_ALPHA": "abc"}, r"EDGE_EMOTION_SMOOTHING_ALPHA = 'abc' must be a number"),
    ("", {"EDGE_EMOTION_SMOOTHING_ALFA": "0.1"},
     r"EDGE_EMOTION_SMOOTHING_ALFA \[smoothing\]: unknown key 'alfa'"),
    ("", {"EDGE_EMOTION_CAMERA_FPS": "3"}, r"EDGE_EMOTION_CAMERA_FPS: no section matches"),
    ("[mqtt]\nurl = \"mqtt://broker:port\"\n", {}, r"mqtt\.url.*does not parse"),
    ("[mqtt]\nurl = \"http://broker:1883\"\n", {}, r"mqtt\.url.*must start with mqtt:// or mqtts://"),
    ("[mqtt]\nurl = \"mqtt://:1883\"\n", {}, r"mqtt\.url.*has no host name"),
    ("[mqtt]\nurl = \"mqtt://u:pw@host\"\n", {},
     r"mqtt\.url.*<credentials removed>@host: credentials do not go in the URL"),
    ("[mqtt]\ntopic_prefix = \"home/#/\"\n", {}, r"topic_prefix.*wildcards"),
    ("[mqtt]\ntls_ca = \"/nonexistent/ca.pem\"\n", {}, r"mqtt\.tls_ca.*does not exist"),
    ("[face]\nmodel = \"/nonexistent/face.tflite\"\n", {},
     r"face\.model.*does not exist.*make train quantize"),
    ("this is = not toml [", {}, r"is not valid TOML"),
])
def test_bad_configuration_is_one_clear_error(tmp_path: Path, face_model: Path, text: str, env: dict,
                                              message: str) -> None:
    if "[face]" not in text:
        text = f'[face]\nmodel = "{face_model}"\n' + text if not text.startswith("this") else text
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text), env=env)


def test_cli_set_with_unknown_key_or_section(model_args) -> None:
    with pytest.raises(ConfigError, match=r"--set tracker \[tracker\]: unknown key 'ids'"):
        load_config(None, env={}, overrides=[*model_args, ("tracker.ids", "3", "--set tracker")])
    with pytest.raises(ConfigError, match=r"unknown section 'trackr'"):
        load_config(None, env={}, overrides=[*model_args, ("trackr.ids", "3", "--set trackr")])


def test_example_toml_documents_every_key_and_loads(face_model: Path) -> None:
    text = EXAMPLE.read_text()
    data = tomllib.loads(text)
    for section, cls in SECTIONS.items():
        assert section in data, f"example.toml lacks [{section}]"
        assert set(data[section]) == set(field_hints(cls)), f"example.toml [{section}] keys differ"
    # every key has a comment line right above it
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[a-z_]+ = ", line):
            assert lines[i - 1].startswith("#"), f"example.toml: no comment above {line!r}"
    config = load_config(EXAMPLE, env={}, overrides=[("face.model", str(face_model), "--model")])
    defaults = Config()
    for section in SECTIONS:
        if section not in ("face", "source"):
            assert getattr(config, section) == getattr(defaults, section), f"example [{section}] != defaults"


# End to end through `python -m device`: stderr is one line, exit code 2, no traceback.
def assert_one_line_exit_2(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr  # nothing before it, not even the TFLite runtime's INFO line
    assert lines[0].startswith("edge-emotion: "), lines[0]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_cli_bad_value_in_env(tmp_path: Path, face_model: Path) -> None:
    result = run_daemon("--model", str(face_model), "--source", "x.mp4", EDGE_EMOTION_DETECTOR_MIN_SIZE="big")
    assert_one_line_exit_2(result, "EDGE_EMOTION_DETECTOR_MIN_SIZE", "must be an integer")


def test_cli_missing_model() -> None:
    result = run_daemon("--model", "models/does_not_exist.tflite", "--no-mqtt")
    assert_one_line_exit_2(result, "face.model (from --model)", "does not exist")


def test_cli_unreadable_video(tmp_path: Path, face_model: Path) -> None:
    junk = tmp_path / "broken.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    result = run_daemon("--model", str(face_model), "--source", str(junk), "--no-mqtt")
    assert_one_line_exit_2(result, f"video file {junk}")
    result = run_daemon("--model", str(face_model), "--source", str(tmp_path / "missing.mp4"), "--no-mqtt")
    assert_one_line_exit_2(result, "does not exist")


def test_cli_camera_that_cannot_open(face_model: Path) -> None:
    result = run_daemon("--model", str(face_model), "--source", "97", "--no-mqtt")
    assert_one_line_exit_2(result, "cannot open camera 97")
    stand_in = str(ROOT / "tests" / "picamera2_stand_in")
    result = run_daemon("--model", str(face_model), "--source", "picamera2", "--no-mqtt",
                        PYTHONPATH=f"{stand_in}:{ROOT}", PICAMERA2_STAND_IN_CAMERAS="0")
    assert_one_line_exit_2(result, "no Raspberry Pi camera detected")


def test_cli_broker_url_that_does_not_parse(face_model: Path) -> None:
    result = run_daemon("--model", str(face_model), "--broker", "mqtt://host:notaport")
    assert_one_line_exit_2(result, "mqtt.url (from --broker)", "does not parse")


def test_cli_unknown_key_in_file(tmp_path: Path, face_model: Path) -> None:
    path = write(tmp_path, "[tracker]\nmax_mised = 3\n")
    result = run_daemon("--config", str(path), "--model", str(face_model))
    assert_one_line_exit_2(result, "unknown key 'max_mised'", str(path))
