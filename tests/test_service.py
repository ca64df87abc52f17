"""The daemon as a systemd service: sd_notify from the frame loop, the unit, install and uninstall."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from demo.clip import frames, write_images
from device.service_notify import ServiceNotifier
from tests.conftest import ROOT, daemon_command, daemon_env

STAND_IN = ROOT / "tests" / "picamera2_stand_in"


class NotifySocket:
    """What systemd would receive: every datagram with the time it arrived."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)

    def collect_while(self, process: subprocess.Popen, timeout: float = 60) -> list[tuple[float, str]]:
        received, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                received.append((time.monotonic(), self.sock.recv(4096).decode()))
            except TimeoutError:
                if process.poll() is not None:
                    break
        return received

    def close(self) -> None:
        self.sock.close()


def test_notifier_reads_the_environment_as_systemd_sets_it(tmp_path: Path) -> None:
    sink = NotifySocket(tmp_path / "notify")
    notifier = ServiceNotifier({"NOTIFY_SOCKET": str(sink.path), "WATCHDOG_USEC": "30000000"})
    assert notifier.watchdog_every_s == 15.0  # twice the rate systemd demands
    notifier.frame_done("1 fps")
    notifier.frame_done("1 fps")  # neither READY nor a ping again so soon
    notifier.stopping()
    messages = []
    while True:
        try:
            messages.append(sink.sock.recv(4096).decode())
        except TimeoutError:
            break
    assert messages == ["READY=1\nSTATUS=1 fps", "WATCHDOG=1",
                        "STOPPING=1\nSTATUS=stopping: flushing events, publishing offline"]
    assert ServiceNotifier({"NOTIFY_SOCKET": str(sink.path), "WATCHDOG_USEC": "1000000",
                            "WATCHDOG_PID": "1"}).watchdog_every_s is None  # meant for another process
    assert not ServiceNotifier({}).enabled  # no systemd: nothing is sent
    sink.close()


def test_daemon_is_ready_after_the_first_frame_then_pings_at_the_watchdog_rate(face_model: Path,
                                                                               tmp_path: Path) -> None:
    sink = NotifySocket(tmp_path / "notify")
    folder = write_images(tmp_path / "frames", frames(20, guest=None))
    daemon = subprocess.Popen(
        daemon_command("--model", str(face_model), "--source", str(folder), "--no-mqtt", "--pace",
                       "--set", "source.fps=10"),
        cwd=ROOT, env=daemon_env(NOTIFY_SOCKET=str(sink.path), WATCHDOG_USEC="1000000"),
        stderr=subprocess.PIPE, text=True)
    received = sink.collect_while(daemon)
    daemon.communicate(timeout=30)
    sink.close()
    assert daemon.returncode == 0
    assert received[0][1].startswith("READY=1\nSTATUS=") and "face(s)" in received[0][1]
    assert received[-1][1].startswith("STOPPING=1")
    pings = [t for t, message in received if message == "WATCHDOG=1"]
    running = received[-1][0] - received[0][0]
    # one ping per 0.5 s of running (half of WATCHDOG_USEC), not one per frame (20 frames in 2 s)
    assert 3 <= len(pings) <= running / 0.5 + 1


def test_pings_stop_when_the_frame_loop_is_stuck(face_model: Path, tmp_path: Path) -> None:
    # the camera's capture never returns after frame 10: no side thread may keep the watchdog happy
    sink = NotifySocket(tmp_path / "notify")
    clip = tmp_path / "clip.npy"
    np.save(clip, np.stack(list(frames(10, guest=None))))
    daemon = subprocess.Popen(
        daemon_command("--model", str(face_model), "--source", "picamera2", "--no-mqtt",
                       "--set", "source.timeout_s=3"),
        cwd=ROOT, env=daemon_env(PYTHONPATH=f"{STAND_IN}:{ROOT}", PICAMERA2_STAND_IN_CLIP=str(clip),
                                 PICAMERA2_STAND_IN_HANG_AFTER="10", NOTIFY_SOCKET=str(sink.path),
                                 WATCHDOG_USEC="200000"),
        stderr=subprocess.PIPE, text=True)
    received = sink.collect_while(daemon)
    _, stderr = daemon.communicate(timeout=30)
    sink.close()
    assert daemon.returncode == 1, stderr  # the capture deadline ended it (or systemd would have)
    pings = [t for t, message in received if message == "WATCHDOG=1"]
    stopping = next(t for t, message in received if message.startswith("STOPPING=1"))
    assert pings and stopping - pings[-1] >= 2.5  # silent for the whole hang


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "systemd"], capture_output=True, check=False)
        found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed and cannot be (apt-get install systemd)")
    return found


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="make install-service installs as root")
def test_install_service_is_idempotent_and_its_unit_verifies(tmp_path: Path) -> None:
    analyze = systemd_analyze()
    prefix, etc, units = tmp_path / "opt", tmp_path / "etc", tmp_path / "units"
    units.mkdir()
    make = ["make", "-s", "--no-print-directory", f"PREFIX={prefix}", f"ETC={etc}", f"UNIT_DIR={units}"]
    for _ in range(2):  # a second run updates in place
        result = subprocess.run([*make, "install-service"], cwd=ROOT, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
    (etc / "edge-emotion.toml").write_text("# kept\n")
    subprocess.run([*make, "install-service"], cwd=ROOT, capture_output=True, check=True, timeout=600)
    assert (etc / "edge-emotion.toml").read_text() == "# kept\n"  # the user's config survives
    assert stat.S_IMODE((etc / "mqtt-password").stat().st_mode) == 0o600
    assert (prefix / "models" / "face_mini_xception_int8.tflite").is_file()
    assert (prefix / "models" / "detectors" / "face_detection_short_range.json").is_file()  # default detector
    code = ("import device.app, sys; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'demo', 'training')))")
    probe = subprocess.run([str(prefix / "venv" / "bin" / "python"), "-c", code], capture_output=True,
                           text=True, cwd=tmp_path)
    assert probe.stdout.strip() == "[]", probe.stderr  # the device only
    unit = units / "edge-emotion.service"
    text = unit.read_text()
    assert f"ExecStart={prefix}/venv/bin/python -m device --config {etc}/edge-emotion.toml" in text
    assert "Type=notify" in text and "WatchdogSec=30" in text and "RestartPreventExitStatus=2" in text
    verify = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    problems = [line for line in (verify.stdout + verify.stderr).splitlines()
                if "edge-emotion.service" in line and "network-online.target" not in line]
    assert verify.returncode == 0 and problems == [], verify.stdout + verify.stderr
    result = subprocess.run([*make, "uninstall-service"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and not unit.exists() and not (prefix / "venv").exists()
    assert (etc / "mqtt-password").exists()  # kept, as it says
    assert subprocess.run([*make, "uninstall-service"], cwd=ROOT, capture_output=True).returncode == 0
