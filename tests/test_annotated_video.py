"""What `--annotate` draws, checked on pixels where a label must be."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

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
    video = AnnotatedVideo(str(out), 15.0, 320, 240)
    for _ in range(5):
        video.write(np.full((240, 320), GREY, np.uint8), [happy_track(box=Box(50, 50, 60, 60))], None)
    video.close()
    capture = cv2.VideoCapture(str(out))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 5
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (320, 240)
    capture.release()
