"""The daemon against Debian's real mosquitto on loopback: messages, outages, crashes, shutdown."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import jsonschema
import pytest

from demo.local_broker import AmqttBroker
from device.config import load_config
from device.sinks.event_sink import SinkHealth
from device.sinks.mqtt_publisher import MqttPublisher
from tests.conftest import ROOT, daemon_command, daemon_env, run_daemon
from tests.mosquitto_broker import MosquittoBroker, Subscriber

pytestmark = pytest.mark.integration
PREFIX = "edge-emotion/test-pi/"


def start_daemon(*args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(daemon_command(*args), cwd=ROOT, env=daemon_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def daemon_args(face_model: Path, video: Path, broker: MosquittoBroker, events_out: Path, *extra: str):
    return ("--model", str(face_model), "--source", str(video), "--broker", broker.url,
            "--device-id", "test-pi", "--events-out", str(events_out), *extra)


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_schema_valid(schema: dict, messages: list[dict]) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    for message in messages:
        validator.validate(message)


def test_daemon_publishes_schema_valid_events_state_status_and_stats(
        mosquitto: MosquittoBroker, face_model: Path, demo_video: Path, schema: dict, tmp_path: Path) -> None:
    sub = Subscriber(mosquitto.port, PREFIX + "#")
    out = tmp_path / "events.jsonl"
    result = run_daemon(*daemon_args(face_model, demo_video, mosquitto, out,
                                     "--set", "mqtt.stats_every_s=0.3", "--set", "events.heartbeat_s=2"))
    assert result.returncode == 0, result.stderr
    file_events = read_events(out)
    assert sub.wait_for(lambda s: len(s.on("/events")) >= len(file_events) and s.on("/status")
                        and s.on("/status")[-1]["status"] == "offline", timeout=20)
    sub.close()
    events = sub.on("/events")
    assert events == file_events  # the very same objects on MQTT and in the file
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    types = [e["type"] for e in events]
    assert types.count("appear") == 2 and types.count("end") == 2 and "heartbeat" in types
    assert {e["track_id"] for e in events} == {1, 2}
    assert all(msg[2] is False for msg in sub.messages if msg[0].endswith("/events"))
    states, statuses, stats = sub.on("/state"), sub.on("/status"), sub.on("/stats")
    assert [s["status"] for s in statuses] == ["online", "offline"]
    assert max(s["faces"] for s in states) == 2 and states[-1]["faces"] == 0
    assert stats and stats[-1]["frames"] == 180 and stats[-1]["events"] == len(events)
    assert_schema_valid(schema, events + states + statuses + stats)
    assert "done: 180 frames" in result.stderr

    late = Subscriber(mosquitto.port, PREFIX + "#")  # retained: status, state and stats, not events
    assert late.wait_for(lambda s: len(s.messages) >= 3, timeout=5)
    time.sleep(0.3)
    assert sorted(topic.rsplit("/", 1)[1] for topic, _, retained in late.messages if retained) == \
        ["state", "stats", "status"]
    late.close()


def test_broker_restart_mid_run_loses_no_event(mosquitto: MosquittoBroker, face_model: Path, demo_video: Path,
                                               schema: dict, tmp_path: Path) -> None:
    # a persistent subscriber session: the broker keeps it (and its queued messages) across the restart
    sub = Subscriber(mosquitto.port, PREFIX + "events", client_id="restart-watcher", persistent=True)
    out = tmp_path / "events.jsonl"
    daemon = start_daemon(*daemon_args(face_model, demo_video, mosquitto, out, "--pace",
                                       "--set", "events.heartbeat_s=0.3", "--set", "mqtt.reconnect_min_s=0.2",
                                       "--set", "mqtt.reconnect_max_s=1", "--set", "mqtt.flush_timeout_s=20"))
    try:
        assert sub.wait_for(lambda s: len(s.on("/events")) >= 3, timeout=30)
        mosquitto.stop()
        time.sleep(2.5)  # the daemon keeps producing events (heartbeats every 0.3 s) into its queue
        mosquitto.start()
        _, stderr = daemon.communicate(timeout=60)
    finally:
        daemon.kill()
    assert daemon.returncode == 0, stderr
    assert "lost the broker" in stderr and "connected to broker" in stderr
    expected = read_events(out)
    assert sub.wait_for(lambda s: {e["seq"] for e in s.on("/events")} >= {e["seq"] for e in expected}, 20)
    sub.close()
    received = sub.on("/events")
    first_seen = list(dict.fromkeys(e["seq"] for e in received))  # QoS 1 may repeat; order must hold
    assert first_seen == list(range(1, len(expected) + 1))
    assert len(expected) >= 15
    assert_schema_valid(schema, received)


def test_kill_9_makes_the_broker_publish_offline(mosquitto: MosquittoBroker, face_model: Path,
                                                  demo_video: Path, schema: dict, tmp_path: Path) -> None:
    sub = Subscriber(mosquitto.port, PREFIX + "status")
    daemon = start_daemon(*daemon_args(face_model, demo_video, mosquitto, tmp_path / "e.jsonl", "--pace"))
    try:
        assert sub.wait_for(lambda s: any(m["status"] == "online" for m in s.on("/status")), timeout=30)
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait(10)
        assert sub.wait_for(lambda s: s.on("/status")[-1]["status"] == "offline", timeout=10)
    finally:
        daemon.kill()
    online, will = sub.on("/status")[0], sub.on("/status")[-1]
    assert will["boot_id"] == online["boot_id"] and will["device_id"] == "test-pi"
    assert_schema_valid(schema, [online, will])
    sub.close()
    late = Subscriber(mosquitto.port, PREFIX + "status")
    assert late.wait_for(lambda s: bool(s.messages), timeout=5)
    assert late.messages[0][1]["status"] == "offline" and late.messages[0][2] is True  # retained
    late.close()


def test_sigterm_stops_capture_flushes_and_says_offline(mosquitto: MosquittoBroker, face_model: Path,
                                                       demo_video: Path, tmp_path: Path) -> None:
    sub = Subscriber(mosquitto.port, PREFIX + "#")
    out = tmp_path / "events.jsonl"
    daemon = start_daemon(*daemon_args(face_model, demo_video, mosquitto, out, "--pace"))
    try:
        assert sub.wait_for(lambda s: len(s.on("/events")) >= 1, timeout=30)
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=30)
    finally:
        daemon.kill()
    assert daemon.returncode == 0, stderr
    assert "SIGTERM received" in stderr
    expected = read_events(out)
    assert expected[-1]["type"] == "end"  # tracks alive at shutdown are ended, not silently dropped
    assert sub.wait_for(lambda s: len(s.on("/events")) >= len(expected) and s.on("/status")[-1]["status"]
                        == "offline", timeout=10)
    assert sub.on("/events") == expected
    frames = int(stderr.split("done: ")[1].split()[0])
    assert frames < 170  # capture stopped early: the clip has 180 frames and plays for 12 s
    sub.close()


def test_password_from_env_or_file_authenticates_and_is_never_logged(tmp_path: Path, face_model: Path,
                                                                     demo_video: Path) -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    broker = MosquittoBroker(tmp_path / "broker", users={"pi": secret, "watcher": "watch"}).start()
    try:
        sub = Subscriber(broker.port, PREFIX + "events", credentials=("watcher", "watch"))
        base = ("--model", str(face_model), "--source", str(demo_video), "--broker", broker.url,
                "--device-id", "test-pi", "--log-level", "debug", "--set", "mqtt.username=pi")
        from_env = run_daemon(*base, EDGE_EMOTION_MQTT_PASSWORD=secret)
        assert from_env.returncode == 0, from_env.stderr
        assert sub.wait_for(lambda s: len(s.on("/events")) >= 4, timeout=10)
        password_file = tmp_path / "mqtt-password"
        password_file.write_text(secret + "\n")
        from_file = run_daemon(*base, "--set", f"mqtt.password_file={password_file}")
        assert from_file.returncode == 0, from_file.stderr
        assert sub.wait_for(lambda s: len({e["boot_id"] for e in s.on("/events")}) == 2, timeout=10)
        sub.close()
        wrong = run_daemon(*base, "--set", "mqtt.flush_timeout_s=1", EDGE_EMOTION_MQTT_PASSWORD="not-it")
        assert wrong.returncode == 0 and "refused the connection" in wrong.stderr
        for result in (from_env, from_file, wrong):
            assert secret not in result.stderr + result.stdout and "not-it" not in result.stderr
        assert secret not in broker.log_path.read_text()
    finally:
        broker.stop()


def test_publisher_queue_is_bounded_drops_oldest_and_delivers_in_order(tmp_path: Path,
                                                                       face_model: Path) -> None:
    broker = MosquittoBroker(tmp_path / "broker", persistence=True).start()
    try:
        # register a persistent subscriber, then take the broker away
        Subscriber(broker.port, PREFIX + "events", client_id="queue-watcher", persistent=True).close()
        broker.stop()
        config = load_config(None, env={}, overrides=[
            ("face.model", str(face_model), "--model"), ("mqtt.url", broker.url, "--broker"),
            ("device.id", "test-pi", "--device-id"), ("mqtt.queue_size", "10", "--set"),
            ("mqtt.reconnect_min_s", "0.1", "--set"), ("mqtt.reconnect_max_s", "0.2", "--set")])
        boot = uuid.uuid4().hex
        status = {"kind": "status", "boot_id": boot}
        publisher = MqttPublisher(config.mqtt, config.topic_prefix, None,
                                  {**status, "device_id": "test-pi", "status": "online"},
                                  {**status, "status": "offline"}, {"kind": "state", "tracks": []})
        publisher.start()
        for seq in range(1, 26):
            publisher.publish_event({"seq": seq})
        deadline = time.monotonic() + 5
        while publisher.dropped < 15 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert publisher.dropped == 15 and publisher.queue_depth == 10
        broker.start()
        sub = Subscriber(broker.port, PREFIX + "events", client_id="queue-watcher", persistent=True)
        assert sub.wait_for(lambda s: len(s.on("/events")) >= 10, timeout=15)
        publisher.close(timeout=5)
        sub.close()
        assert [e["seq"] for e in sub.on("/events")][:10] == list(range(16, 26))
        assert publisher.health() == SinkHealth(queue_depth=0, dropped=15, denied=0)
    finally:
        broker.stop()


def test_a_late_will_from_an_earlier_boot_is_answered_with_online(
        mosquitto: MosquittoBroker, face_model: Path, demo_video: Path, tmp_path: Path) -> None:
    # after a power cut the broker may publish the old connection's will once the new boot is online
    sub = Subscriber(mosquitto.port, PREFIX + "status")
    daemon = start_daemon(*daemon_args(face_model, demo_video, mosquitto, tmp_path / "e.jsonl", "--pace"))
    try:
        assert sub.wait_for(lambda s: len(s.on("/status")) >= 1, timeout=30)
        online = sub.on("/status")[0]
        old_will = {**online, "status": "offline", "boot_id": "0" * 32}
        sub.client.publish(PREFIX + "status", json.dumps(old_will), qos=1).wait_for_publish(5)
        expected = ["online", "offline", "online"]
        assert sub.wait_for(lambda s: [m["status"] for m in s.on("/status")] == expected, timeout=10)
    finally:
        daemon.kill()
        daemon.wait()
    assert sub.on("/status")[2]["boot_id"] == online["boot_id"]
    sub.close()


def make_test_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1, made with openssl."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "1", "-subj", "/CN=edge-emotion test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "1", "-extfile", "san.ext")
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


def test_tls_broker_with_ca(tmp_path: Path, face_model: Path, demo_video: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    ca, cert, key = make_test_ca(tmp_path)
    broker = MosquittoBroker(tmp_path / "broker", tls=(ca, cert, key)).start()
    try:
        sub = Subscriber(broker.port, PREFIX + "events")  # plain listener, same broker
        tls_url = f"mqtts://127.0.0.1:{broker.tls_port}"
        result = run_daemon("--model", str(face_model), "--source", str(demo_video), "--broker", tls_url,
                            "--device-id", "test-pi", "--set", f"mqtt.tls_ca={ca}")
        assert result.returncode == 0, result.stderr
        assert f"connected to broker 127.0.0.1:{broker.tls_port}" in result.stderr
        assert sub.wait_for(lambda s: len(s.on("/events")) >= 4, timeout=10)
        sub.close()
        # a daemon that does not trust the broker's CA never delivers, and says so
        result = run_daemon("--model", str(face_model), "--source", str(demo_video), "--broker", tls_url,
                            "--device-id", "test-pi", "--set", "mqtt.flush_timeout_s=1")
        assert result.returncode == 0 and "unreachable" in result.stderr and "not delivered" in result.stderr
    finally:
        broker.stop()


def test_demo_fallback_broker_amqtt_carries_the_daemon(face_model: Path, demo_video: Path) -> None:
    # machines without mosquitto run the demo on amqtt, in-process on loopback
    broker = AmqttBroker().start()
    try:
        sub = Subscriber(broker.port, PREFIX + "#")
        result = run_daemon("--model", str(face_model), "--source", str(demo_video), "--broker", broker.url,
                            "--device-id", "test-pi")
        assert result.returncode == 0, result.stderr
        assert sub.wait_for(lambda s: len(s.on("/events")) >= 4 and s.on("/status")
                            and s.on("/status")[-1]["status"] == "offline", timeout=15)
        assert [e["seq"] for e in sub.on("/events")] == list(range(1, len(sub.on("/events")) + 1))
        sub.close()
    finally:
        broker.stop()
