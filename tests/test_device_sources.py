"""Frame sources: the Pi camera path through the picamera2 stand-in, video files and image folders."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from demo.clip import frames, write_images, write_video
from device.config import SourceSection
from device.vision.frame_sources import (
    DeadlineSource,
    ImageSequenceSource,
    OpenCVSource,
    Picamera2Source,
    SourceError,
    open_source,
)

STAND_IN = Path(__file__).parent / "picamera2_stand_in"


@pytest.fixture
def picamera2(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(STAND_IN))
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    module = importlib.import_module("picamera2")
    clip = np.stack(list(frames(12, guest=None)))
    monkeypatch.setattr(module, "FRAMES", clip)
    monkeypatch.setattr(module, "SKIPPED", set())
    monkeypatch.setattr(module, "CAMERAS", None)
    monkeypatch.setattr(module, "instances", [])
    yield module, clip
    sys.modules.pop("picamera2", None)


def test_picamera2_path_gives_the_y_plane_and_counts_dropped_frames(picamera2) -> None:
    module, clip = picamera2
    module.SKIPPED = {3, 4, 7}
    source = open_source(SourceSection(uri="picamera2", width=640, height=480, fps=25.0))
    assert isinstance(source, DeadlineSource) and isinstance(source.source, Picamera2Source) and source.live
    got = [source.read() for _ in range(6)]
    # the stand-in pads rows to a wider stride and appends U/V planes: only the Y plane may come out
    assert all(f.grey.shape == (480, 640) for f in got)
    np.testing.assert_array_equal(got[0].grey, clip[0])
    np.testing.assert_array_equal(got[3].grey, clip[5])  # frames 3 and 4 never reached the daemon
    assert source.dropped == 3
    assert [round(f.media_time_s, 3) for f in got[:4]] == [0.0, 0.04, 0.08, 0.2]
    camera = module.instances[0]
    assert camera.config["main"] == {"size": (640, 480), "format": "YUV420"}
    assert camera.config["controls"] == {"FrameRate": 25.0}
    source.close()
    assert len(module.instances) == 1 and camera.closed and not camera.started


def test_picamera2_without_a_camera_is_a_clear_error(picamera2) -> None:
    module, _ = picamera2
    module.CAMERAS = 0
    with pytest.raises(SourceError, match="no Raspberry Pi camera detected"):
        Picamera2Source(640, 480, 30.0)


def test_picamera2_missing_module_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails like on a desktop
    with pytest.raises(SourceError, match="apt install python3-picamera2"):
        Picamera2Source(640, 480, 30.0)


def test_video_file_source_reads_every_frame_then_ends(tmp_path: Path) -> None:
    clip = list(frames(20, guest=None))
    path = write_video(tmp_path / "clip.avi", iter(clip), fps=20)
    source = open_source(SourceSection(uri=str(path)))
    assert isinstance(source, OpenCVSource) and not source.live and source.fps == 20
    got = []
    while (frame := source.read()) is not None:
        got.append(frame)
    assert len(got) == 20 and got[-1].index == 19 and got[-1].media_time_s == pytest.approx(19 / 20)
    assert got[0].grey.ndim == 2 and got[0].grey.shape == (480, 640)
    assert np.abs(got[5].grey.astype(int) - clip[5]).mean() < 3  # MJPEG is lossy, but close
    source.close()


def test_image_folder_source_is_lossless_and_skips_unreadable_files(tmp_path: Path) -> None:
    clip = list(frames(5, guest=None))
    folder = write_images(tmp_path / "seq", iter(clip))
    (folder / "frame_00002.png").write_bytes(b"not a png")
    source = open_source(SourceSection(uri=str(folder), fps=10.0))
    assert isinstance(source, ImageSequenceSource)
    got = []
    while (frame := source.read()) is not None:
        got.append(frame)
    assert [f.index for f in got] == [0, 1, 3, 4] and source.dropped == 1
    np.testing.assert_array_equal(got[2].grey, clip[3])
    assert got[2].media_time_s == pytest.approx(0.3)


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: d / "missing.avi", "does not exist"),
    (lambda d: (d / "junk.avi").write_bytes(b"\x00" * 4096) and d / "junk.avi", "cannot open video file"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "no images found"),
])
def test_unopenable_sources_raise_source_error(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        open_source(SourceSection(uri=str(make(tmp_path))))
