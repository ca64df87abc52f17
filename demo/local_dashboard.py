"""The dashboard as a child process on a free loopback port, for the demo, the load bench and tests.

It runs as `python -m dashboard` in its own process, as in production: its CPU time and memory are
then its own (not the simulated fleet's), and a restart is a real restart. The broker beside it is
`demo.local_broker`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from demo.local_broker import LOOPBACK, free_port

ROOT = Path(__file__).resolve().parent.parent


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
