"""Frame rate, per-stage latency and process health, for the `stats` topic and the final summary.

Stage times are averaged per processed frame (so `detect` includes the frames that skip
detection): the stage times add up to the frame time, and `1000 / sum` is the frame rate.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

STAGES = ("capture", "detect", "track", "preprocess", "infer", "smooth", "publish")
THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")


def cpu_temperature_c() -> float | None:
    """SoC temperature where the kernel exposes it (every Raspberry Pi does); None elsewhere."""
    try:
        return round(int(THERMAL_ZONE.read_text()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def _status_mb(field: str) -> float | None:
    """A memory figure from /proc/self/status (kB there), or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_mb() -> float:
    """Current resident memory of this process."""
    return _status_mb("VmRSS") or 0.0


def peak_rss_mb() -> float:
    """Peak resident memory since exec. getrusage's ru_maxrss would include the memory of the
    parent the daemon was forked from (a test runner that loaded TensorFlow, say)."""
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class PipelineStats:
    """Accumulates stage seconds over a reporting window and over the whole run."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.frames = 0
        self.faces = 0
        self._total = dict.fromkeys(STAGES, 0.0)
        self._window = dict.fromkeys(STAGES, 0.0)
        self._window_frames = 0
        self._window_started = self.started

    def add(self, stage: str, seconds: float) -> None:
        self._total[stage] += seconds
        self._window[stage] += seconds

    def frame_done(self, faces: int) -> None:
        self.frames += 1
        self.faces += faces
        self._window_frames += 1

    def window(self) -> dict:
        """fps and per-frame stage ms since the previous call; starts a new window."""
        now = time.monotonic()
        elapsed = max(now - self._window_started, 1e-9)
        frames = max(self._window_frames, 1)
        report = {"fps": round(self._window_frames / elapsed, 2),
                  "stage_ms": {s: round(1e3 * v / frames, 3) for s, v in self._window.items()}}
        self._window = dict.fromkeys(STAGES, 0.0)
        self._window_frames = 0
        self._window_started = now
        return report

    def totals(self) -> dict:
        """Whole-run figures for the summary."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        frames = max(self.frames, 1)
        return {"frames": self.frames, "seconds": round(elapsed, 3), "fps": round(self.frames / elapsed, 2),
                "faces_per_frame": round(self.faces / frames, 3),
                "stage_ms": {s: round(1e3 * v / frames, 3) for s, v in self._total.items()}}
