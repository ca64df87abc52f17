"""mosquitto and the dashboard as child processes, for the load bench and the tests.

The dashboard runs as `python -m dashboard` in its own process, as in production: its CPU time
and memory are then its own (not the simulated fleet's), and a restart is a real restart.
mosquitto gets a throw-away config on a free loopback port, `set_tcp_nodelay true` (QoS 1 round
trips drop from ~40 ms to ~0.3 ms) and a log file (its stdout is block-buffered until exit).
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

LOOPBACK = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None)


def _stop(process: subprocess.Popen, timeout: float) -> int:
    """SIGTERM, then SIGKILL if it does not exit within `timeout`; its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


class MosquittoProcess:
    """Debian's mosquitto on 127.0.0.1 with anonymous access: a bench broker, never a real one."""

    def __init__(self, workdir: Path) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise FileNotFoundError("mosquitto is not installed (apt install mosquitto)")
        self.binary = binary
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "mosquitto.log"
        self.config_path = workdir / "mosquitto.conf"
        self.config_path.write_text("\n".join([
            f"listener {self.port} {LOOPBACK}", "allow_anonymous true", "set_tcp_nodelay true",
            f"log_dest file {self.log_path}", "log_type error", "log_type warning", "log_type notice",
            f"user {getpass.getuser()}"]) + "\n")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 10.0) -> MosquittoProcess:
        self.process = subprocess.Popen([self.binary, "-c", str(self.config_path)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not start on port {self.port}; see {self.log_path}")

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process, 10.0)
            self.process = None


class DashboardProcess:
    """`python -m dashboard` on a free loopback port; `start` returns once /api/health answers."""

    def __init__(self, broker_url: str, db_path: Path, log_path: Path, *extra_args: str,
                 port: int | None = None, token: str | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.token = token
        self.args = [sys.executable, "-m", "dashboard", "--broker", broker_url, "--db", str(db_path),
                     "--port", str(self.port), *extra_args]
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/"

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def get(self, path: str, timeout: float = 10.0) -> bytes:
        """GET a path of the running dashboard (with the token, if it has one)."""
        request = urllib.request.Request(self.url + path.lstrip("/"))
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()

    def start(self, timeout: float = 30.0) -> DashboardProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        if self.token:
            env["EDGE_EMOTION_DASHBOARD_TOKEN"] = self.token
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.args, cwd=ROOT, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the dashboard exited with {self.process.returncode}: "
                                   f"{self.log_path.read_text()[-2000:]}")
            try:
                self.get("api/health", timeout=1.0)
                return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the dashboard did not answer within {timeout:.0f} s: "
                           f"{self.log_path.read_text()[-2000:]}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (it writes what is queued, then exits 0); the exit code."""
        code = _stop(self.process, timeout) if self.process is not None else 0
        self.process = None
        return code
