"""Where grey frames come from: the Pi camera, anything OpenCV can open, or a folder of images.

All sources hand out a `Frame` with a uint8 grey image. On a Pi, picamera2 delivers YUV420 and
the Y plane *is* the grey image, so no colour conversion is spent per frame; it is imported only
when selected, because it exists only on Raspberry Pi OS. OpenCV covers webcams (an index),
video files and network streams; the image source replays a folder or glob (tests, stills).
"""

from __future__ import annotations

import glob
import importlib
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from device.config import SourceSection
from device.errors import SourceError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".tif", ".tiff")
MAX_CONSECUTIVE_FAILURES = 50



@dataclass(frozen=True)
class Frame:
    grey: np.ndarray
    index: int
    media_time_s: float  # position in a file, or seconds since the camera started


class FrameSource(Protocol):
    description: str
    live: bool  # a camera or stream: runs until stopped; files and folders end
    fps: float
    dropped: int

    def read(self) -> Frame | None:
        """The next frame, or None at the end of a file."""

    def close(self) -> None: ...


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image


class OpenCVSource:
    """A webcam index, a video file or a stream URL through cv2.VideoCapture."""

    def __init__(self, uri: str, width: int, height: int, fps: float) -> None:
        self.description = uri
        self.dropped = 0
        self._failures = 0
        self._index = 0
        if uri.isdigit():
            self.live = True
            self._cap = cv2.VideoCapture(int(uri))
            what = f"camera {uri}"
            todo = "check that it is plugged in, that /dev/video* exists and the user is in group video"
        else:
            self.live = "://" in uri
            if not self.live and not Path(uri).is_file():
                raise SourceError(f"video file {uri} does not exist; check the path given to --source")
            self._cap = cv2.VideoCapture(uri)
            what = f"stream {uri}" if self.live else f"video file {uri}"
            todo = "check the URL and the network" if self.live else "it is not a video OpenCV can decode"
        if not self._cap.isOpened():
            raise SourceError(f"cannot open {what}: {todo}")
        if uri.isdigit():
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            self._cap.set(cv2.CAP_PROP_FPS, fps)
        reported = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = reported if 0 < reported < 1000 else fps
        self._started = time.monotonic()
        ok, first = self._cap.read()
        if not ok:
            self._cap.release()
            raise SourceError(f"{what} opened but no frame could be read: {todo}")
        self._pending: np.ndarray | None = first

    def read(self) -> Frame | None:
        if self._pending is not None:
            image, self._pending = self._pending, None
        else:
            ok, image = self._cap.read()
            while not ok:
                if not self.live:
                    return None
                self.dropped += 1
                self._failures += 1
                if self._failures >= MAX_CONSECUTIVE_FAILURES:
                    raise SourceError(f"{self.description} stopped delivering frames "
                                      f"({MAX_CONSECUTIVE_FAILURES} failed reads in a row)")
                ok, image = self._cap.read()
        self._failures = 0
        media_time = time.monotonic() - self._started if self.live else self._index / self.fps
        frame = Frame(_grey(image), self._index, media_time)
        self._index += 1
        return frame

    def close(self) -> None:
        self._cap.release()


class ImageSequenceSource:
    """A folder of images (sorted by name), a glob pattern, or a single image, at a nominal rate."""

    live = False

    def __init__(self, uri: str, fps: float) -> None:
        self.description = uri
        self.fps = fps
        self.dropped = 0
        path = Path(uri)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            files = [path]
        else:
            files = [Path(p) for p in sorted(glob.glob(uri))]
        if not files:
            raise SourceError(f"no images found at {uri}; give a folder of .png/.jpg files, a glob or "
                              "an image")
        self._files = files
        self._index = 0
        if cv2.imread(str(files[0]), cv2.IMREAD_GRAYSCALE) is None:
            raise SourceError(f"image {files[0]} cannot be read; it is not an image OpenCV can decode")

    def read(self) -> Frame | None:
        while self._index < len(self._files):
            index = self._index
            self._index += 1
            grey = cv2.imread(str(self._files[index]), cv2.IMREAD_GRAYSCALE)
            if grey is not None:
                return Frame(grey, index, index / self.fps)
            self.dropped += 1
        return None

    def close(self) -> None:
        self._files = []


class Picamera2Source:
    """The Raspberry Pi camera through picamera2: one Picamera2 for the process lifetime.

    Frames are taken as whole capture requests so each comes with its sensor timestamp; a gap of
    more than one frame duration between timestamps counts as dropped frames.
    """

    live = True

    def __init__(self, width: int, height: int, fps: float) -> None:
        try:
            picamera2 = importlib.import_module("picamera2")
        except ImportError as exc:
            raise SourceError(f"picamera2 cannot be imported ({exc}); on Raspberry Pi OS run `apt install "
                              "python3-picamera2` and create the venv with --system-site-packages") from None
        if not picamera2.Picamera2.global_camera_info():
            raise SourceError("no Raspberry Pi camera detected; check the ribbon cable and "
                              "`rpicam-hello --list-cameras`, or choose another source")
        self.description = "picamera2"
        self.fps = fps
        self.dropped = 0
        try:
            self._camera = picamera2.Picamera2()
            config = self._camera.create_video_configuration(
                main={"size": (width, height), "format": "YUV420"}, controls={"FrameRate": fps})
            self._camera.align_configuration(config)
            self._camera.configure(config)
            self._width, self._height = config["main"]["size"]
            self._camera.start()
        except (RuntimeError, OSError, IndexError) as exc:
            raise SourceError(f"the Raspberry Pi camera cannot be opened ({exc}); is another program "
                              "using it?") from None
        self._index = 0
        self._first_ns: int | None = None
        self._last_ns: int | None = None

    def read(self) -> Frame:
        try:
            request = self._camera.capture_request()
            try:
                yuv = request.make_array("main")
                metadata = request.get_metadata()
            finally:
                request.release()
        except (RuntimeError, OSError, KeyError, ValueError) as exc:
            raise SourceError(f"the Raspberry Pi camera stopped delivering frames ({exc}); check the ribbon "
                              "cable and `rpicam-hello --list-cameras`") from None
        stamp = int(metadata["SensorTimestamp"])
        if self._last_ns is not None and metadata.get("FrameDuration"):
            period_ns = 1000 * int(metadata["FrameDuration"])
            self.dropped += max(0, round((stamp - self._last_ns) / period_ns) - 1)
        self._first_ns = stamp if self._first_ns is None else self._first_ns
        self._last_ns = stamp
        # YUV420: the first `height` rows are Y, possibly padded to a wider stride.
        frame = Frame(yuv[:self._height, :self._width], self._index, (stamp - self._first_ns) / 1e9)
        self._index += 1
        return frame

    def close(self) -> None:
        self._camera.stop()
        self._camera.close()


class DeadlineSource:
    """A live source whose reads must return within `timeout_s`.

    A camera can hang inside its driver (a loose ribbon cable, a USB webcam unplugged mid-read)
    and neither picamera2 nor OpenCV gives up by itself. Reads happen on a daemon thread; a read
    that takes longer becomes a SourceError, the same path as any other capture failure (exit 1,
    the service manager restarts the daemon), and the stuck thread cannot keep the process alive.
    """

    def __init__(self, source: FrameSource, timeout_s: float) -> None:
        self.source = source
        self.timeout_s = timeout_s
        self.description, self.live, self.fps = source.description, source.live, source.fps
        self._requests: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[tuple[Frame | None, BaseException | None]] = queue.SimpleQueue()
        self._stuck = False
        threading.Thread(target=self._serve, name="capture", daemon=True).start()

    @property
    def dropped(self) -> int:
        return self.source.dropped

    def _serve(self) -> None:
        while self._requests.get():
            try:
                self._results.put((self.source.read(), None))
            except BaseException as exc:  # handed to the frame loop, which knows what to do
                self._results.put((None, exc))

    def read(self) -> Frame | None:
        self._requests.put(True)
        try:
            frame, error = self._results.get(timeout=self.timeout_s)
        except queue.Empty:
            self._stuck = True
            raise SourceError(f"{self.description} delivered no frame for {self.timeout_s:g} s "
                              "(source.timeout_s); the camera or its driver has hung") from None
        if error is not None:
            raise error
        return frame

    def close(self) -> None:
        self._requests.put(False)
        if self._stuck:  # closing a hung camera may hang too: give it a moment, then let go
            closer = threading.Thread(target=self.source.close, name="capture-close", daemon=True)
            closer.start()
            closer.join(2.0)
        else:
            self.source.close()


def open_source(section: SourceSection) -> FrameSource:
    """Pick the source from `kind`, or from what `uri` looks like when kind is "auto"."""
    kind, uri = section.kind, section.uri
    if kind == "auto":
        if uri == "picamera2":
            kind = "picamera2"
        elif Path(uri).is_dir() or Path(uri).suffix.lower() in IMAGE_SUFFIXES or any(c in uri for c in "*?["):
            kind = "images"
        else:
            kind = "opencv"
    if kind == "picamera2":
        source: FrameSource = Picamera2Source(section.width, section.height, section.fps)
    elif kind == "images":
        source = ImageSequenceSource(uri, section.fps)
    else:
        source = OpenCVSource(uri, section.width, section.height, section.fps)
    return DeadlineSource(source, section.timeout_s) if source.live else source
