"""A throw-away MQTT broker on loopback, for the demo, the benchmark and the tests.

Debian's mosquitto is preferred: it is what a real installation runs. It gets its own config on a
free 127.0.0.1 port, `set_tcp_nodelay true` (QoS 1 round trips drop from ~40 ms to ~0.3 ms) and a
log file (its stdout is block-buffered until exit). Without mosquitto, amqtt runs in-process on
its own asyncio thread. Neither ever listens on anything but 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None)


class MosquittoBroker:
    """mosquitto as a child process; `persistence` keeps sessions and queued messages across a restart."""

    def __init__(self, workdir: str | Path, port: int | None = None, persistence: bool = False,
                 tls: tuple[Path, Path, Path] | None = None, users: dict[str, str] | None = None,
                 acl: str = "") -> None:
        """`tls` = (CA, server certificate, server key) adds a TLS listener on `tls_port`;
        `users` (name → password) turns anonymous access off; `acl` is an ACL file's text."""
        binary = mosquitto_binary()
        if binary is None:
            raise FileNotFoundError("mosquitto is not installed (apt install mosquitto)")
        self.binary = binary
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log_path = self.workdir / "mosquitto.log"
        self.config_path = self.workdir / "mosquitto.conf"
        access = ["allow_anonymous true"]
        if users:
            passwords = self.workdir / "passwords"
            passwords.write_text("".join(f"{name}:{password}\n" for name, password in users.items()))
            hasher = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
            subprocess.run([hasher, "-U", str(passwords)], check=True, capture_output=True)
            access = ["allow_anonymous false", f"password_file {passwords}"]
        lines = [f"listener {self.port} {LOOPBACK}", *access, "set_tcp_nodelay true",
                 f"log_dest file {self.log_path}", "log_type error", "log_type warning", "log_type notice",
                 "log_type information", "connection_messages true", f"user {getpass.getuser()}"]
        if acl:
            (self.workdir / "acl").write_text(acl)
            lines.append(f"acl_file {self.workdir / 'acl'}")
        if persistence:
            lines += ["persistence true", f"persistence_location {self.workdir}/", "autosave_interval 1"]
        self.tls_port = free_port() if tls else None
        if tls:
            ca, cert, key = tls
            lines += [f"listener {self.tls_port} {LOOPBACK}", f"cafile {ca}", f"certfile {cert}",
                      f"keyfile {key}"]
        self.config_path.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        self.process = subprocess.Popen([self.binary, "-c", str(self.config_path)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        if not wait_for_port(self.port, timeout):
            self.stop()
            log = self.log_path.read_text() if self.log_path.exists() else "(no log)"
            raise RuntimeError(f"mosquitto did not start on port {self.port}: {log[-500:]}")
        return self

    def _end(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def stop(self) -> None:
        """Graceful: mosquitto saves its persistence file on SIGTERM."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        self._end(signal.SIGKILL)

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AmqttBroker:
    """amqtt in-process, for machines without mosquitto; anonymous access on loopback only."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="amqtt", daemon=True)
        self._broker = None

    @property
    def url(self) -> str:
        return f"mqtt://{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 10.0) -> AmqttBroker:
        from amqtt.broker import Broker

        config = {"listeners": {"default": {"type": "tcp", "bind": f"{LOOPBACK}:{self.port}"}},
                  "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}}
        self._thread.start()

        async def boot() -> Broker:
            broker = Broker(config)
            await broker.start()
            return broker

        self._broker = asyncio.run_coroutine_threadsafe(boot(), self._loop).result(timeout)
        return self

    def stop(self) -> None:
        if self._broker is not None:
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(10)
            self._broker = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> AmqttBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_local_broker(workdir: str | Path) -> MosquittoBroker | AmqttBroker:
    """mosquitto when installed, else amqtt."""
    if mosquitto_binary() is not None:
        return MosquittoBroker(workdir).start()
    return AmqttBroker().start()
