"""The example locked-down broker (deploy/mosquitto/) run for real: TLS, passwords and the ACL.

The test makes a CA with deploy/mosquitto/make-certs.sh, installs the example mosquitto.conf the
way the README says (a drop-in under conf.d/, next to a main config like Debian's) with its paths
and ports moved into a temporary folder on loopback, the example acl unchanged, and passwords made
with mosquitto_passwd. Then real clients (the daemon, paho) show what the broker lets through.
"""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.reasoncodes import ReasonCode

from demo.local_broker import LOOPBACK, free_port, mosquitto_binary, wait_for_port
from tests.conftest import ROOT, run_daemon

pytestmark = pytest.mark.integration

EXAMPLE = ROOT / "deploy" / "mosquitto"
PASSWORDS = {"kitchen": "kitchen-pw", "livingroom": "livingroom-pw", "dashboard": "dashboard-pw",
             "homeassistant": "homeassistant-pw"}
NOT_AUTHORIZED = 0x87


@dataclass
class Broker:
    folder: Path
    plain_port: int
    tls_port: int
    ca: Path
    log: Path
    process: subprocess.Popen

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def render_dropin(text: str, plain_port: int, tls_port: int, paths: dict[str, Path]) -> str:
    """The example config with its ports on free loopback ports and its files in the test folder.
    Every line the test rewrites must be there, so a reshaped example fails here, not later."""
    wanted = {"listener 1883 127.0.0.1": f"listener {plain_port} {LOOPBACK}",
              "listener 8883": f"listener {tls_port} {LOOPBACK}",
              **{f"{key} {old}": f"{key} {paths[key]}" for key, old in (
                  ("cafile", "/etc/mosquitto/ca_certificates/edge-emotion-ca.crt"),
                  ("certfile", "/etc/mosquitto/certs/edge-emotion-server.crt"),
                  ("keyfile", "/etc/mosquitto/certs/edge-emotion-server.key"),
                  ("password_file", "/etc/mosquitto/passwd"), ("acl_file", "/etc/mosquitto/acl"))}}
    lines = text.splitlines()
    missing = [line for line in wanted if line not in lines]
    assert not missing, f"the example config no longer has {missing}"
    return "\n".join(wanted.get(line, line) for line in lines) + "\n"


def directives(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory):
    missing = [tool for tool in ("openssl", "bash", "mosquitto_passwd") if shutil.which(tool) is None]
    if mosquitto_binary() is None or missing:
        missing = missing or ["mosquitto"]
        pytest.skip(f"needs mosquitto, mosquitto_passwd, openssl and bash (missing: {', '.join(missing)})")
    folder = tmp_path_factory.mktemp("locked-broker")
    certs = folder / "certs"
    made = subprocess.run(["bash", str(EXAMPLE / "make-certs.sh"), "--out", str(certs), "--client", "kitchen",
                           "127.0.0.1", "localhost"], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert "/etc/mosquitto/certs/edge-emotion-server.key" in made.stdout  # says what to copy where

    passwd = folder / "passwd"
    for n, (user, password) in enumerate(PASSWORDS.items()):  # as the README does it (-c: the first)
        subprocess.run(["mosquitto_passwd", *(["-c"] if n == 0 else []), "-b", str(passwd), user, password],
                       check=True, capture_output=True)
    shutil.copy(EXAMPLE / "acl", folder / "acl")
    plain_port, tls_port = free_port(), free_port()
    (folder / "conf.d").mkdir()
    (folder / "conf.d" / "edge-emotion.conf").write_text(render_dropin(
        (EXAMPLE / "mosquitto.conf").read_text(), plain_port, tls_port,
        {"cafile": certs / "ca.crt", "certfile": certs / "server.crt", "keyfile": certs / "server.key",
         "password_file": passwd, "acl_file": folder / "acl"}))
    log = folder / "mosquitto.log"
    # what Debian's /etc/mosquitto/mosquitto.conf says, in the test folder (plus the user to run as)
    (folder / "mosquitto.conf").write_text(
        f"pid_file {folder / 'mosquitto.pid'}\npersistence true\npersistence_location {folder}/\n"
        f"log_dest file {log}\nuser {getpass.getuser()}\ninclude_dir {folder / 'conf.d'}\n")
    stderr = folder / "mosquitto.stderr"
    with stderr.open("w") as sink:
        process = subprocess.Popen([mosquitto_binary(), "-c", str(folder / "mosquitto.conf")],
                                   stdout=subprocess.DEVNULL, stderr=sink)
    if not (wait_for_port(tls_port, 10) and wait_for_port(plain_port, 5)):
        process.kill()
        process.wait()
        raise RuntimeError(f"mosquitto did not start: {stderr.read_text()}"
                           f"{log.read_text() if log.exists() else ''}")
    yield Broker(folder, plain_port, tls_port, certs / "ca.crt", log, process)
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Client:
    """A paho MQTT 5 client that remembers its CONNACK, PUBACK reason codes and messages."""

    def __init__(self, port: int, user: str | None, ca: Path | None = None, wait: bool = True) -> None:
        """`user` connects with its password from PASSWORDS; None connects anonymously."""
        self.connack: ReasonCode | None = None
        self.messages: list[tuple[str, bytes]] = []
        self.acks: dict[int, ReasonCode] = {}
        self.subscribed: set[int] = set()
        self._changed = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if user is not None:
            self.client.username_pw_set(user, PASSWORDS[user])
        if ca is not None:
            context = ssl.create_default_context(cafile=str(ca))
            context.verify_flags |= ssl.VERIFY_X509_STRICT  # what Python 3.13 turns on by default
            self.client.tls_set_context(context)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = lambda c, u, mid, codes, p: self._note(lambda: self.subscribed.add(mid))
        self.client.on_message = self._on_message
        self.client.connect(LOOPBACK, port, keepalive=10)
        self.client.loop_start()
        if wait:
            assert self.wait_for(lambda: self.connack is not None, 10), f"no CONNACK for {user}"

    def _note(self, change: Callable[[], None]) -> None:
        with self._changed:
            change()
            self._changed.notify_all()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._note(lambda: setattr(self, "connack", reason_code))

    def _on_message(self, client, userdata, message) -> None:
        self._note(lambda: self.messages.append((message.topic, message.payload)))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._note(lambda: self.acks.__setitem__(mid, reason_code))

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def subscribe(self, topic: str) -> None:
        _, mid = self.client.subscribe(topic, qos=1)
        assert self.wait_for(lambda: mid in self.subscribed, 5), f"no SUBACK for {topic}"

    def publish(self, topic: str, payload: str = '{"probe": true}') -> ReasonCode:
        info = self.client.publish(topic, payload, qos=1)
        assert self.wait_for(lambda: info.mid in self.acks, 5), f"no PUBACK for {topic}"
        return self.acks[info.mid]

    def on(self, suffix: str) -> list[dict]:
        with self._changed:
            return [json.loads(payload) for topic, payload in self.messages if topic.endswith(suffix)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def daemon(broker: Broker, face_model: Path, video: Path, device_id: str, user: str, password: str,
           *extra: str, url: str = "") -> subprocess.CompletedProcess:
    """`python -m device` over TLS (unless `url` says otherwise: then no CA either, which would turn
    TLS on even for mqtt://), password from the environment."""
    tls = () if url else ("--set", f"mqtt.tls_ca={broker.ca}")
    return run_daemon("--model", str(face_model), "--source", str(video),
                      "--broker", url or f"mqtts://127.0.0.1:{broker.tls_port}", "--device-id", device_id,
                      "--set", f"mqtt.username={user}", *tls, *extra, EDGE_EMOTION_MQTT_PASSWORD=password)


def summary(stderr: str) -> str:
    """The daemon's last line: "done: N frames ..., T tracks, E events (...), U undelivered, ..."."""
    return next(line for line in stderr.splitlines() if " done: " in line)


def events_in(stderr: str) -> int:
    return int(summary(stderr).split(" events (")[0].rsplit(" ", 1)[1])


def test_the_example_config_is_locked_down() -> None:
    config = directives((EXAMPLE / "mosquitto.conf").read_text())
    listeners = [d for d in config if d[0] == "listener"]
    assert listeners == [["listener", "1883", "127.0.0.1"], ["listener", "8883"]]  # plain: loopback only
    settings = {d[0]: d[1:] for d in config if d[0] != "listener"}
    for key in ("cafile", "certfile", "keyfile", "password_file", "acl_file"):
        assert key in settings
    assert settings["allow_anonymous"] == ["false"] and settings["per_listener_settings"] == ["false"]
    assert settings["persistence"] == ["true"] and settings["set_tcp_nodelay"] == ["true"]
    assert int(settings["max_queued_messages"][0]) > 1000  # the default that dropped dashboard messages
    acl = directives((EXAMPLE / "acl").read_text())
    assert ["pattern", "readwrite", "edge-emotion/%u/#"] in acl
    assert ["pattern", "write", "homeassistant/device/%u/config"] in acl
    # the named users (dashboard, Home Assistant) only read device topics
    assert all(d[1] in ("read", "deny") for d in acl if d[0] == "topic" and d[-1].startswith("edge-emotion/"))


def test_make_certs_defaults_to_this_machine_and_makes_client_certificates(broker: Broker,
                                                                          tmp_path: Path) -> None:
    def san(cert: Path) -> str:
        return subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-ext", "subjectAltName"],
                              check=True, capture_output=True, text=True).stdout

    assert "IP Address:127.0.0.1" in san(broker.ca.parent / "server.crt")
    made = subprocess.run(["bash", str(EXAMPLE / "make-certs.sh"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    host = socket.gethostname().split(".")[0]
    names = san(tmp_path / "server.crt")
    assert f"DNS:{host}" in names and "DNS:localhost" in names and "IP Address:127.0.0.1" in names
    for key in ("ca.key", "server.key"):
        assert (tmp_path / key).stat().st_mode & 0o077 == 0  # private keys: owner only
    certs = broker.ca.parent
    verified = subprocess.run(["openssl", "verify", "-x509_strict", "-purpose", "sslclient", "-CAfile",
                               str(certs / "ca.crt"), str(certs / "kitchen.crt")],
                              capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_device_publishes_with_its_credentials_and_the_dashboard_user_receives(
        broker: Broker, face_model: Path, demo_video: Path, tmp_path: Path) -> None:
    dashboard = Client(broker.tls_port, "dashboard", ca=broker.ca)
    assert not dashboard.connack.is_failure
    dashboard.subscribe("edge-emotion/#")
    out = tmp_path / "events.jsonl"
    result = daemon(broker, face_model, demo_video, "kitchen", "kitchen", PASSWORDS["kitchen"],
                    "--events-out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"connected to broker 127.0.0.1:{broker.tls_port}" in result.stderr
    expected = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(expected) >= 4
    assert dashboard.wait_for(lambda: len(dashboard.on("kitchen/events")) >= len(expected) and
                              [s["status"] for s in dashboard.on("kitchen/status")][-1:] == ["offline"], 10)
    assert dashboard.on("kitchen/events") == expected
    assert "0 undelivered" in summary(result.stderr) and "0 refused by the broker" in summary(result.stderr)
    assert PASSWORDS["kitchen"] not in result.stderr + broker.log_text()
    assert "u'kitchen'" in broker.log_text()  # the broker logs who connected
    dashboard.close()


@pytest.fixture(scope="module")
def wrong_password_run(broker: Broker, face_model: Path, demo_video: Path) -> subprocess.CompletedProcess:
    return daemon(broker, face_model, demo_video, "kitchen", "kitchen", "not-the-password",
                  "--set", "mqtt.flush_timeout_s=1")


def test_a_wrong_password_is_refused_with_a_clear_log_line(wrong_password_run: subprocess.CompletedProcess,
                                                           broker: Broker) -> None:
    stderr = wrong_password_run.stderr
    assert wrong_password_run.returncode == 0, stderr  # a refused broker does not stop the camera
    assert (f"broker 127.0.0.1:{broker.tls_port} refused the connection (Not authorized); "
            "check mqtt.username and the password (mqtt.password_file or EDGE_EMOTION_MQTT_PASSWORD)"
            ) in stderr
    assert events_in(stderr) > 0 and f"{events_in(stderr)} undelivered" in summary(stderr)
    assert "not-the-password" not in stderr + wrong_password_run.stdout
    assert "disconnected, not authorised" in broker.log_text()


def test_a_refused_login_is_not_taken_for_a_broker_without_mqtt5(
        wrong_password_run: subprocess.CompletedProcess) -> None:
    assert "does not answer MQTT 5" not in wrong_password_run.stderr


def test_the_dashboard_user_cannot_publish(broker: Broker) -> None:
    watcher = Client(broker.tls_port, "homeassistant", ca=broker.ca)  # reads everything below
    watcher.subscribe("edge-emotion/#")
    watcher.subscribe("homeassistant/#")
    dashboard = Client(broker.tls_port, "dashboard", ca=broker.ca)
    topics = ("edge-emotion/kitchen/events", "edge-emotion/kitchen/status", "edge-emotion/dashboard/events",
              "homeassistant/device/dashboard/config", "homeassistant/status")
    for topic in topics:
        reason = dashboard.publish(topic, '"from the dashboard"')
        assert reason.is_failure and reason.value == NOT_AUTHORIZED and str(reason) == "Not authorized", topic
    # the same broker takes a device's message on its own prefix, so the refusals above were the ACL
    kitchen = Client(broker.tls_port, "kitchen", ca=broker.ca)
    assert not kitchen.publish("edge-emotion/kitchen/probe").is_failure
    assert watcher.wait_for(lambda: any(t.endswith("/probe") for t, _ in watcher.messages), 5)
    assert not [t for t, payload in watcher.messages if payload == b'"from the dashboard"']
    for client in (watcher, dashboard, kitchen):
        client.close()


def test_home_assistant_discovery_goes_through_the_acl(broker: Broker) -> None:
    home_assistant = Client(broker.tls_port, "homeassistant", ca=broker.ca)
    home_assistant.subscribe("homeassistant/device/+/config")
    kitchen = Client(broker.tls_port, "kitchen", ca=broker.ca)
    kitchen.subscribe("homeassistant/status")
    assert not kitchen.publish("homeassistant/device/kitchen/config", '"kitchen config"').is_failure
    assert kitchen.publish("homeassistant/device/livingroom/config").value == NOT_AUTHORIZED
    assert kitchen.publish("homeassistant/status").value == NOT_AUTHORIZED  # only Home Assistant says that
    assert not home_assistant.publish("homeassistant/status", "online").is_failure
    assert kitchen.wait_for(lambda: ("homeassistant/status", b"online") in kitchen.messages, 5)
    assert home_assistant.wait_for(lambda: ("homeassistant/device/kitchen/config", b'"kitchen config"')
                                   in home_assistant.messages, 5)
    assert not any(topic.endswith("/livingroom/config") for topic, _ in home_assistant.messages)
    for client in (home_assistant, kitchen):
        client.close()


def test_a_device_cannot_publish_under_another_devices_prefix(broker: Broker, face_model: Path,
                                                              demo_video: Path, tmp_path: Path) -> None:
    dashboard = Client(broker.tls_port, "dashboard", ca=broker.ca)
    dashboard.subscribe("edge-emotion/livingroom/#")
    # kitchen's credentials, livingroom's topics
    out = tmp_path / "events.jsonl"
    result = daemon(broker, face_model, demo_video, "livingroom", "kitchen", PASSWORDS["kitchen"],
                    "--events-out", str(out))
    assert result.returncode == 0, result.stderr
    events = len(out.read_text().splitlines())
    assert events >= 4
    assert (f"broker 127.0.0.1:{broker.tls_port} refused a message on edge-emotion/livingroom/events "
            "(Not authorized, reason code 0x87): the broker's ACL does not let user 'kitchen' publish there"
            ) in result.stderr
    assert result.stderr.count("refused a message on edge-emotion/livingroom/events") == 1  # not per event
    assert "refused a message on edge-emotion/livingroom/status" in result.stderr  # its status too
    assert f"{events} refused by the broker" in summary(result.stderr)
    assert "0 undelivered" in summary(result.stderr)
    # the MQTT 5 reason code behind that line, seen by a plain client with the same credentials
    kitchen = Client(broker.tls_port, "kitchen", ca=broker.ca)
    assert kitchen.publish("edge-emotion/livingroom/events").value == NOT_AUTHORIZED
    time.sleep(0.3)
    assert dashboard.messages == []  # nothing, not even a status, reached livingroom's topics
    for client in (dashboard, kitchen):
        client.close()


def test_a_plain_tcp_client_cannot_talk_to_the_tls_port(broker: Broker, face_model: Path,
                                                         demo_video: Path) -> None:
    plain = Client(broker.tls_port, "dashboard", wait=False)  # right password, no TLS
    assert not plain.wait_for(lambda: plain.connack is not None, 3)  # never a CONNACK
    plain.close()
    assert "SSL routines::wrong version number" in broker.log_text()
    # the daemon given mqtt:// for the TLS port says what is wrong: 2 s for an MQTT 5 answer, 1 s for
    # 3.1.1, so the run is paced at the clip's 15 fps (12 s) rather than over as fast as it can go
    result = daemon(broker, face_model, demo_video, "kitchen", "kitchen", PASSWORDS["kitchen"],
                    "--set", "mqtt.connect_timeout_s=1", "--set", "mqtt.flush_timeout_s=1", "--pace",
                    url=f"mqtt://127.0.0.1:{broker.tls_port}")
    assert result.returncode == 0, result.stderr
    assert ("it accepts TCP connections but has not answered the MQTT CONNECT" in result.stderr and
            "use mqtts://" in result.stderr)
    assert f"{events_in(result.stderr)} undelivered" in summary(result.stderr)
    # the loopback listener without TLS still needs a password (for mosquitto_sub on the broker itself)
    anonymous = Client(broker.plain_port, None)
    assert anonymous.connack.is_failure
    anonymous.close()
    local = Client(broker.plain_port, "dashboard")
    assert not local.connack.is_failure
    local.close()
