"""What `--annotate` draws, checked on pixels where a label must be."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from demo.clip import frames
from device.events.emotion_events import TrackSnapshot
from device.runtime.labels import FACE_LABELS
from device.sinks.annotated_video import (
    BAR_HEIGHT,
    BAR_WIDTH,
    EMOTION_COLOURS,
    AnnotatedVideo,
    VoiceOverlay,
    annotate_frame,
    probability_bar_origin,
)
from device.vision.box_geometry import Box
from tests.conftest import ROOT, run_daemon
from tests.test_device_config import assert_one_line_exit_2

STAND_IN = ROOT / "tests" / "picamera2_stand_in"

GREY = 100


FACE_BOX = Box(200, 150, 120, 120)


def happy_track(track_id: int = 3, box: Box = FACE_BOX) -> TrackSnapshot:
    probabilities = np.array([0.05, 0.0, 0.05, 0.75, 0.05, 0.0, 0.1])
    return TrackSnapshot(track_id, box, 1.0, "happy", 0.75, probabilities, 0.6, 0.4)


def coloured(picture: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(picture == np.array(colour, np.uint8), axis=-1)


def test_box_label_and_probability_bar_are_where_they_belong() -> None:
    frame = np.full((480, 640), GREY, np.uint8)
    track = happy_track()
    picture = annotate_frame(frame, [track])
    happy = coloured(picture, EMOTION_COLOURS["happy"])
    box = track.box
    assert happy[box.y + box.h // 2, box.x] and happy[box.y, box.x + box.w // 2]  # the box's edges
    assert not happy[box.y + box.h // 2, box.x + box.w // 2]  # not filled
    label_band = picture[box.y - 24:box.y - 3, box.x:box.x + 150]
    assert (np.abs(label_band.astype(int) - GREY).sum(axis=-1) > 60).sum() > 100  # text is there
    x0, base = probability_bar_origin(track, frame.shape[0])
    for i, (name, p) in enumerate(zip(FACE_LABELS, track.probabilities, strict=True)):
        left = x0 + i * (BAR_WIDTH + 1)
        column = coloured(picture, EMOTION_COLOURS[name])[base - BAR_HEIGHT:base + 1, left + 2]
        assert abs(int(column.sum()) - max(1, round(p * BAR_HEIGHT)) - 1) <= 1, name  # height ∝ probability
    untouched = picture[10:60, 500:600]
    assert np.all(untouched == GREY)  # nothing drawn away from the face or the voice line


def test_voice_line_and_the_speakers_fused_emotion() -> None:
    frame = np.full((480, 640), GREY, np.uint8)
    plain = annotate_frame(frame, [happy_track()])
    voiced = annotate_frame(frame, [happy_track()], VoiceOverlay("voice: sad 0.61", 3, "fused: sad 0.70"))
    assert np.all(plain[5:25, 8:150] == GREY)
    assert (voiced[5:25, 8:150] > 200).all(axis=-1).sum() > 30  # white voice text top left
    label_row = slice(happy_track().box.y - 20, happy_track().box.y - 2)
    assert (voiced[label_row] != plain[label_row]).any()  # the fused emotion joins the speaker's label


def test_a_box_at_the_bottom_edge_keeps_its_bar_inside_the_frame() -> None:
    frame = np.full((240, 320), GREY, np.uint8)
    track = happy_track(box=Box(100, 150, 90, 90))  # reaches the bottom row
    _, base = probability_bar_origin(track, frame.shape[0])
    assert base < frame.shape[0]
    annotate_frame(frame, [track])  # draws without error


def test_the_writer_keeps_the_sources_size_and_frame_count(tmp_path: Path) -> None:
    out = tmp_path / "annotated.avi"
    video = AnnotatedVideo(str(out), 15.0)
    for _ in range(5):
        video.write(np.full((240, 320), GREY, np.uint8), [happy_track(box=Box(50, 50, 60, 60))], None)
    video.close()
    capture = cv2.VideoCapture(str(out))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 5
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (320, 240)
    capture.release()


def test_the_daemon_annotates_a_file_at_its_rate_and_size(face_model: Path, demo_video: Path,
                                                          tmp_path: Path) -> None:
    out, events_out = tmp_path / "annotated.avi", tmp_path / "events.jsonl"
    result = run_daemon("--model", str(face_model), "--source", str(demo_video), "--no-mqtt",
                        "--annotate", str(out), "--events-out", str(events_out))
    assert result.returncode == 0, result.stderr
    source, annotated = cv2.VideoCapture(str(demo_video)), cv2.VideoCapture(str(out))
    for prop in (cv2.CAP_PROP_FRAME_COUNT, cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT,
                 cv2.CAP_PROP_FPS):
        assert annotated.get(prop) == source.get(prop), prop
    appear = json.loads(events_out.read_text().splitlines()[0])
    annotated.set(cv2.CAP_PROP_POS_FRAMES, appear["frame"]["index"])
    ok, picture = annotated.read()
    box, colour = appear["box"], np.array(EMOTION_COLOURS[appear["emotion"]], int)
    edge = picture[box["y"] + box["h"] // 2, box["x"]].astype(int)  # the left edge of the face's box
    assert ok and np.abs(edge - colour).max() < 40  # the emotion's colour, through MJPEG
    source.release()
    annotated.release()


def test_annotating_a_live_camera_needs_explicit_permission(face_model: Path, tmp_path: Path) -> None:
    clip = tmp_path / "clip.npy"
    np.save(clip, np.stack(list(frames(5, guest=None))))
    env = {"PYTHONPATH": f"{STAND_IN}:{ROOT}", "PICAMERA2_STAND_IN_CLIP": str(clip)}
    result = run_daemon("--model", str(face_model), "--source", "picamera2", "--no-mqtt",
                        "--annotate", str(tmp_path / "people.mp4"), **env)
    assert_one_line_exit_2(result, "live camera", "annotate.allow_live = true")
    assert not (tmp_path / "people.mp4").exists()
    allowed = run_daemon("--model", str(face_model), "--source", "picamera2", "--no-mqtt", "--annotate",
                         str(tmp_path / "people.mp4"), "--set", "annotate.allow_live=true",
                         "--set", "source.timeout_s=1", **env, PICAMERA2_STAND_IN_HANG_AFTER="5")
    assert (tmp_path / "people.mp4").stat().st_size > 0, allowed.stderr
