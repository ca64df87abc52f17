"""Every input tried as a hostile user would: one clear line and exit 2 at start-up, and at run time
no traceback, no hang and no silent loss. Each case here once ended otherwise."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from demo.clip import frames, write_images
from tests.conftest import ROOT, daemon_command, daemon_env, run_daemon
from tests.mosquitto_broker import LOOPBACK, MosquittoBroker, Subscriber, free_port, mosquitto_binary
from tests.test_device_config import assert_one_line_exit_2

STAND_IN = ROOT / "tests" / "picamera2_stand_in"
SHIPPED_VOICE = ROOT / "models" / "voice_cnn_int8.tflite"


@pytest.mark.parametrize(("settings", "fragments"), [
    # non-finite and absurd numbers (inf scale factor: gigabytes allocated, SIGTERM ignored)
    (["detector.scale_factor=inf"], ["detector.scale_factor", "must be a finite number"]),
    (["detector.scale_factor=1e20"], ["detector.scale_factor", "range 1.01 to 2, not 1e+20"]),
    (["fusion.face_weight=inf"], ["fusion.face_weight", "finite"]),  # wrote NaN into events
    (["mqtt.flush_timeout_s=inf"], ["mqtt.flush_timeout_s", "finite"]),  # OverflowError
    (["source.fps=inf"], ["source.fps", "finite"]),  # every frame time 0
    (["source.fps=nan"], ["source.fps", "finite"]),
    (["device.num_threads=99999999999"], ["device.num_threads", "range 1 to 16"]),
    (["detector.min_size=99999999999"], ["detector.min_size", "range 8 to 1024"]),
    (["detector.min_neighbors=99999999999"], ["detector.min_neighbors", "range 0 to 50"]),
    # names that change what a topic means (pi#1 made the broker drop every connection, unlogged)
    (["device.id=pi#1"], ["device.id", "'pi#1' may not contain"]),
    (["device.id=kitchen/pi"], ["device.id", "may not contain"]),
    (["mqtt.url=mqtt://my broker:1883"], ["mqtt.url", "characters a host name cannot have"]),
])
def test_bad_numbers_and_names_are_one_line_and_exit_2(face_model: Path, settings: list[str],
                                                       fragments: list[str]) -> None:
    args = [arg for setting in settings for arg in ("--set", setting)]
    result = run_daemon("--model", str(face_model), "--source", "unused.mp4", *args)
    assert_one_line_exit_2(result, *fragments)


def test_credentials_in_the_broker_url_are_refused_and_never_echoed(face_model: Path) -> None:
    for url in ("mqtt://user:secret@host:1883", "mqtt://user:secret@host:99999"):
        result = run_daemon("--model", str(face_model), "--source", "unused.mp4", "--broker", url)
        assert_one_line_exit_2(result, "credentials do not go in the URL", "mqtt.password_file")
        assert "secret" not in result.stderr and "user:" not in result.stderr


def test_files_that_are_not_what_they_claim(face_model: Path, tmp_path: Path) -> None:
    latin1 = tmp_path / "edge.toml"
    latin1.write_bytes('[device]\nid = "caf\xe9"\n'.encode("latin-1"))
    assert_one_line_exit_2(run_daemon("--config", str(latin1), "--model", str(face_model)),
                           "is not UTF-8 text")
    password = tmp_path / "password"
    password.write_bytes(b"\xff\xfe\x00secret")
    config = tmp_path / "mqtt.toml"
    config.write_text(f'[mqtt]\nusername = "pi"\npassword_file = "{password}"\n')
    assert_one_line_exit_2(run_daemon("--config", str(config), "--model", str(face_model)),
                           "mqtt.password_file", "is not UTF-8 text")
    result = run_daemon("--model", str(face_model), "--set", f"logging.file={tmp_path}")
    assert_one_line_exit_2(result, "logging.file", "is a folder")
    result = run_daemon("--model", str(face_model), "--events-out", str(tmp_path))
    assert_one_line_exit_2(result, "events.out", "is a folder")
    not_pem = tmp_path / "ca.crt"
    not_pem.write_bytes(bytes(range(256)))
    result = run_daemon("--model", str(face_model), "--broker", "mqtts://localhost:8883",
                        "--set", f"mqtt.tls_ca={not_pem}")
    assert_one_line_exit_2(result, "mqtt.tls_ca", "is not a PEM file")


def test_a_start_up_error_after_the_model_loaded_is_still_the_only_line(face_model: Path) -> None:
    # the TFLite runtime prints "INFO: Created TensorFlow Lite XNNPACK delegate" when the model loads,
    # which used to come before the one error line
    result = run_daemon("--model", str(face_model), "--source", "/nonexistent/clip.mp4", "--no-mqtt")
    assert_one_line_exit_2(result, "video file /nonexistent/clip.mp4 does not exist")
    assert "XNNPACK" not in result.stderr


@pytest.mark.skipif(not SHIPPED_VOICE.is_file(), reason="the shipped voice model is not in this checkout")
def test_required_audio_shorter_than_one_window_is_refused(face_model: Path, demo_video: Path,
                                                           tmp_path: Path) -> None:
    short = tmp_path / "short.wav"
    soundfile.write(short, np.zeros(16000, np.int16), 16000)
    result = run_daemon("--model", str(face_model), "--source", str(demo_video), "--no-mqtt",
                        "--audio-file", str(short), "--set", "audio.required=true")
    assert_one_line_exit_2(result, "audio is required", "1.00 s of audio, shorter than one 2 s voice window")


def test_a_closed_pipe_ends_the_run_quietly(face_model: Path, demo_video: Path) -> None:
    # `python -m device ... --events-out - | head -1`, as the docs suggest with jq
    daemon = subprocess.Popen(daemon_command("--model", str(face_model), "--source", str(demo_video),
                                             "--events-out", "-", "--no-mqtt", "--pace"),
                              cwd=ROOT, env=daemon_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        first = json.loads(daemon.stdout.readline())
        daemon.stdout.close()  # what `head -1` does after its line
        stderr = daemon.stderr.read()
        daemon.wait(timeout=30)
    finally:
        daemon.kill()
    assert first["type"] == "appear"
    assert daemon.returncode == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr and "Exception ignored" not in stderr
    assert "reader of stdout went away; stopping" in stderr


def test_the_events_file_is_appended_to_across_restarts(face_model: Path, tmp_path: Path) -> None:
    folder = write_images(tmp_path / "frames", frames(12, guest=None))
    out = tmp_path / "events.jsonl"
    for _ in range(2):
        assert run_daemon("--model", str(face_model), "--source", str(folder), "--events-out", str(out),
                          "--no-mqtt").returncode == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len({e["boot_id"] for e in events}) == 2  # the first run's events are still there
    assert [e["type"] for e in events].count("appear") == 2


@pytest.mark.integration
def test_a_full_disk_is_one_line_exit_1_and_mqtt_still_says_offline(mosquitto: MosquittoBroker,
                                                                     face_model: Path,
                                                                     demo_video: Path) -> None:
    sub = Subscriber(mosquitto.port, "edge-emotion/full-pi/#")
    result = run_daemon("--model", str(face_model), "--source", str(demo_video), "--events-out", "/dev/full",
                        "--broker", mosquitto.url, "--device-id", "full-pi")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "cannot write to events file /dev/full (No space left on device)" in errors[0]
    # the event the disk refused still reached the broker, and the MQTT close ran: offline was published
    assert sub.wait_for(lambda s: s.on("/events") and s.on("/status")
                        and s.on("/status")[-1]["status"] == "offline", timeout=10)
    assert sub.on("/events")[0]["type"] == "appear"
    sub.close()


@pytest.mark.integration
@pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto is not installed")
def test_a_publish_the_broker_acl_refuses_is_logged_and_counted(face_model: Path, demo_video: Path,
                                                                 tmp_path: Path) -> None:
    # anonymous clients may read everything and write nothing: every event is refused (MQTT 5 0x87)
    broker = MosquittoBroker(tmp_path / "broker", acl="topic read #\n").start()
    try:
        sub = Subscriber(broker.port, "edge-emotion/#")
        result = run_daemon("--model", str(face_model), "--source", str(demo_video), "--broker", broker.url,
                            "--device-id", "acl-pi", "--set", "mqtt.stats_every_s=0.2")
        assert result.returncode == 0, result.stderr
        refusals = [line for line in result.stderr.splitlines() if "refused a message on" in line]
        # once per topic (status, discovery, events), not once per event
        topics = sorted(line.split("refused a message on ")[1].split(" (")[0] for line in refusals)
        assert topics == ["edge-emotion/acl-pi/events", "edge-emotion/acl-pi/status",
                          "homeassistant/device/acl-pi/config"], result.stderr
        assert all("(Not authorized, reason code 0x87)" in line for line in refusals)
        summary = next(line for line in result.stderr.splitlines() if "done:" in line)
        events = int(summary.split(" events (")[0].rsplit(" ", 1)[1])
        assert f"{events} refused by the broker" in summary and "0 undelivered" in summary
        time.sleep(0.5)
        assert sub.on("/events") == []
        sub.close()
    finally:
        broker.stop()


@pytest.mark.integration
def test_mqtts_to_a_plain_port_says_the_tls_handshake_failed(mosquitto: MosquittoBroker, face_model: Path,
                                                             tmp_path: Path) -> None:
    folder = write_images(tmp_path / "frames", frames(6, guest=None))
    result = run_daemon("--model", str(face_model), "--source", str(folder),
                        "--broker", f"mqtts://{LOOPBACK}:{mosquitto.port}", "--set", "mqtt.flush_timeout_s=2")
    assert result.returncode == 0, result.stderr
    assert "unreachable: the TLS handshake failed" in result.stderr, result.stderr
    assert f"is {mosquitto.port} the broker's TLS port" in result.stderr


def test_a_port_that_never_answers_connect_gets_a_warning(face_model: Path, tmp_path: Path) -> None:
    # accepts TCP, reads, never answers: not an MQTT broker (or a TLS port given as mqtt://)
    server = socket.create_server((LOOPBACK, 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.extend(server.accept() for _ in range(3)), daemon=True).start()
    folder = write_images(tmp_path / "frames", frames(6, guest=None))
    try:
        daemon = subprocess.Popen(daemon_command(
            "--model", str(face_model), "--source", str(folder), "--pace", "--set", "source.fps=1",
            "--broker", f"mqtt://{LOOPBACK}:{server.getsockname()[1]}", "--set", "mqtt.connect_timeout_s=1",
            "--set", "mqtt.flush_timeout_s=0"), cwd=ROOT, env=daemon_env(), stderr=subprocess.PIPE, text=True)
        _, stderr = daemon.communicate(timeout=60)
    finally:
        server.close()
    assert daemon.returncode == 0, stderr
    assert "does not answer MQTT 5; using MQTT 3.1.1" in stderr
    assert "has not answered the MQTT CONNECT in 1 s (mqtt.connect_timeout_s)" in stderr, stderr


@pytest.mark.integration
def test_a_restart_replaces_the_faces_a_killed_run_left_retained(mosquitto: MosquittoBroker,
                                                                 face_model: Path, tmp_path: Path) -> None:
    topic = "edge-emotion/crash-pi/state"
    leftover = {"kind": "state", "faces": 1, "tracks": [{"track_id": 7, "emotion": "happy"}]}
    publisher = Subscriber(mosquitto.port, "unused/#")
    publisher.client.publish(topic, json.dumps(leftover), qos=1, retain=True).wait_for_publish(5)
    publisher.close()
    blank = write_images(tmp_path / "blank", (np.full((480, 640), 90, np.uint8) for _ in range(5)))
    assert run_daemon("--model", str(face_model), "--source", str(blank), "--broker", mosquitto.url,
                      "--device-id", "crash-pi").returncode == 0
    late = Subscriber(mosquitto.port, topic)
    assert late.wait_for(lambda s: s.on("/state"), timeout=5)
    assert late.on("/state")[-1]["faces"] == 0 and late.on("/state")[-1]["tracks"] == []
    late.close()


@pytest.mark.parametrize(("fault", "message"), [
    ("PICAMERA2_STAND_IN_HANG_AFTER", "picamera2 delivered no frame for 1 s (source.timeout_s)"),
    ("PICAMERA2_STAND_IN_FAIL_AFTER", "the Raspberry Pi camera stopped delivering frames (Camera frontend"),
])
def test_a_camera_that_hangs_or_fails_ends_the_run_with_exit_1(face_model: Path, tmp_path: Path, fault: str,
                                                               message: str) -> None:
    clip = tmp_path / "clip.npy"
    np.save(clip, np.stack(list(frames(10, guest=None))))
    daemon = subprocess.Popen(daemon_command("--model", str(face_model), "--source", "picamera2", "--no-mqtt",
                                             "--set", "source.timeout_s=1"),
                              cwd=ROOT, env=daemon_env(PYTHONPATH=f"{STAND_IN}:{ROOT}",
                                                       PICAMERA2_STAND_IN_CLIP=str(clip), **{fault: "5"}),
                              stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGKILL)
    assert daemon.returncode == 1, stderr
    assert message in stderr and "Traceback" not in stderr
    assert "done: 5 frames" in stderr


@pytest.mark.skipif(not SHIPPED_VOICE.is_file(), reason="the shipped voice model is not in this checkout")
def test_alsa_noise_of_probing_a_microphone_never_comes_before_the_one_line(
        face_model: Path, demo_video: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyaudio", reason="pyaudio is not installed (pip install pyaudio)")
    # no sound card here: PortAudio's probe prints a screen of "ALSA lib ... cannot find card" lines
    result = run_daemon("--model", str(face_model), "--source", str(demo_video), "--no-mqtt",
                        "--set", "audio.enabled=true", "--set", "audio.source=pyaudio",
                        "--set", "audio.device=usb mic", "--set", "audio.required=true",
                        HOME=str(tmp_path))
    assert_one_line_exit_2(result, "audio is required", "no audio input device 'usb mic'")
    assert "ALSA lib" not in result.stderr


def test_the_summary_counts_events_dropped_from_the_full_queue(face_model: Path, demo_video: Path) -> None:
    port = free_port()  # nothing listens there: every event waits, and the queue holds 3
    result = run_daemon("--model", str(face_model), "--source", str(demo_video), "--broker",
                        f"mqtt://{LOOPBACK}:{port}", "--set", "mqtt.queue_size=3",
                        "--set", "mqtt.flush_timeout_s=0", "--set", "events.heartbeat_s=1")
    assert result.returncode == 0, result.stderr
    summary = next(line for line in result.stderr.splitlines() if "done:" in line)
    events = int(summary.split(" events (")[0].rsplit(" ", 1)[1])
    assert events > 3 and f"3 undelivered, {events - 3} dropped from the full queue" in summary, summary
