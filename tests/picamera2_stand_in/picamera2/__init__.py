"""A stand-in for Raspberry Pi OS's `picamera2`, with only the calls `Picamera2Source` makes.

The real module needs libcamera, which exists only on a Pi. Put this folder first on sys.path
(or PYTHONPATH) and the daemon's Pi code path runs unchanged on a desktop. It behaves like the
real camera where the daemon depends on it:
- `capture_request().make_array("main")` of a YUV420 stream is (height * 3 / 2, stride) uint8,
  Y plane first, with rows padded to a stride wider than the image (so the Y slice matters);
- metadata carries SensorTimestamp (ns) and FrameDuration (us); frames listed in `SKIPPED` are
  left out of the timeline, as when the daemon is too slow and the camera overwrites buffers.

Frames come from the .npy file (N, H, W) named by PICAMERA2_STAND_IN_CLIP, else `FRAMES`, else a
moving gradient; PICAMERA2_STAND_IN_CAMERAS=0 (or `CAMERAS = 0`) emulates a Pi with no camera.
Faults a real camera shows: PICAMERA2_STAND_IN_HANG_AFTER=N makes the capture after N frames
never return (a loose ribbon cable), PICAMERA2_STAND_IN_FAIL_AFTER=N makes it raise as libcamera
does when the camera disappears.
"""

from __future__ import annotations

import os
import threading

import numpy as np

FRAMES: np.ndarray | None = None
CAMERAS: int | None = None
SKIPPED: set[int] = set()
STRIDE_PAD = 64
instances: list[Picamera2] = []


def _clip(width: int, height: int) -> np.ndarray:
    path = os.environ.get("PICAMERA2_STAND_IN_CLIP")
    if path:
        return np.load(path)
    if FRAMES is not None:
        return FRAMES
    ramp = np.add.outer(np.arange(height), np.arange(width)) % 256
    return np.stack([((ramp + 4 * i) % 256).astype(np.uint8) for i in range(30)])


class _Request:
    def __init__(self, yuv: np.ndarray, metadata: dict) -> None:
        self._yuv, self._metadata, self.released = yuv, metadata, False

    def make_array(self, name: str) -> np.ndarray:
        assert name == "main" and not self.released
        return self._yuv.copy()

    def get_metadata(self) -> dict:
        return dict(self._metadata)

    def release(self) -> None:
        self.released = True


class Picamera2:
    @staticmethod
    def global_camera_info() -> list[dict]:
        count = CAMERAS if CAMERAS is not None else int(os.environ.get("PICAMERA2_STAND_IN_CAMERAS", "1"))
        return [{"Model": "stand-in", "Num": i} for i in range(count)]

    def __init__(self, camera_num: int = 0) -> None:
        if not self.global_camera_info():
            raise IndexError("list index out of range")
        instances.append(self)
        self.config: dict | None = None
        self.started = False
        self.closed = False
        self._frame = 0

    def create_video_configuration(self, main: dict | None = None, controls: dict | None = None,
                                   **kwargs: object) -> dict:
        return {"main": dict(main or {"size": (640, 480), "format": "XBGR8888"}),
                "controls": dict(controls or {}), **kwargs}

    def align_configuration(self, config: dict) -> None:
        width, height = config["main"]["size"]
        config["main"]["size"] = (width - width % 2, height - height % 2)

    def configure(self, config: dict) -> None:
        if config["main"].get("format") != "YUV420":
            raise RuntimeError("the stand-in only emulates the YUV420 stream the daemon asks for")
        self.config = config
        width, height = config["main"]["size"]
        self._clip = _clip(width, height)
        self._period_us = int(1e6 / config["controls"].get("FrameRate", 30.0))

    def start(self) -> None:
        assert self.config is not None, "configure() before start()"
        self.started = True

    def capture_request(self) -> _Request:
        assert self.started, "start() before capture_request()"
        if self._frame >= int(os.environ.get("PICAMERA2_STAND_IN_HANG_AFTER", "-1")) >= 0:
            threading.Event().wait()
        if self._frame >= int(os.environ.get("PICAMERA2_STAND_IN_FAIL_AFTER", "-1")) >= 0:
            raise RuntimeError("Camera frontend has timed out!")
        while self._frame in SKIPPED:
            self._frame += 1
        width, height = self.config["main"]["size"]
        grey = self._clip[self._frame % len(self._clip)]
        stride = width + STRIDE_PAD
        yuv = np.full((height * 3 // 2, stride), 128, np.uint8)
        yuv[:height, :width] = grey[:height, :width]
        yuv[:height, width:] = 0
        metadata = {"SensorTimestamp": 10**9 + self._frame * self._period_us * 1000,
                    "FrameDuration": self._period_us}
        self._frame += 1
        return _Request(yuv, metadata)

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True
