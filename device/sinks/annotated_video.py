"""`--annotate out.mp4`: the source's frames with what the daemon saw drawn on them.

Per track: its box in the colour of its smoothed emotion, the track id, the emotion and its
confidence, and a small bar of the seven probabilities under the box; with audio on, the voice
reading and, on the likely speaker, the fused emotion. For a person checking a recording or a
camera's position: the daemon itself stays headless, and nothing here runs unless asked for (it
writes pictures of people to disk, so a live camera needs `annotate.allow_live = true`).

`annotate_frame` is a pure function (frame and readings in, picture out) so what must appear
where is tested on pixels; `AnnotatedVideo` only feeds it frames and writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from device.errors import SinkError
from device.events.emotion_events import TrackSnapshot
from device.runtime.labels import FACE_LABELS

# BGR, one per face label, the same hues as the dashboard's legend.
EMOTION_COLOURS: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 220), "disgust": (20, 140, 120), "fear": (170, 70, 150), "happy": (30, 190, 240),
    "sad": (180, 110, 30), "surprise": (20, 130, 250), "neutral": (160, 160, 160),
}
BAR_HEIGHT = 24  # pixels for a probability of 1
BAR_WIDTH = 8
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class VoiceOverlay:
    """The voice line at the top of the picture, and the fused emotion on the speaker's box."""

    text: str  # e.g. "voice: sad 0.61" or "voice: silent"
    speaker_track_id: int | None = None
    fused: str = ""  # e.g. "fused: sad 0.70"


def probability_bar_origin(track: TrackSnapshot, height: int) -> tuple[int, int]:
    """Bottom-left corner of the seven-bar chart: under the box, or inside it at the frame's edge."""
    x = track.box.x
    y = track.box.y + track.box.h + 4 + BAR_HEIGHT
    return x, y if y < height else track.box.y + track.box.h - 2


def annotate_frame(grey: np.ndarray, tracks: list[TrackSnapshot],
                   voice: VoiceOverlay | None = None) -> np.ndarray:
    """A BGR copy of the frame with every track's box, label and probability bar drawn on it."""
    picture = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    height = picture.shape[0]
    for track in tracks:
        colour = EMOTION_COLOURS[track.emotion]
        box = track.box
        cv2.rectangle(picture, (box.x, box.y), (box.x + box.w - 1, box.y + box.h - 1), colour, 2)
        label = f"#{track.track_id} {track.emotion} {track.confidence:.2f}"
        if voice is not None and voice.speaker_track_id == track.track_id and voice.fused:
            label += f" | {voice.fused}"
        _text(picture, label, box.x, max(14, box.y - 9), colour)  # descenders clear of the box
        x0, base = probability_bar_origin(track, height)
        for i, (name, p) in enumerate(zip(FACE_LABELS, track.probabilities, strict=True)):
            top = base - max(1, round(float(p) * BAR_HEIGHT))
            left = x0 + i * (BAR_WIDTH + 1)
            cv2.rectangle(picture, (left, top), (left + BAR_WIDTH - 1, base), EMOTION_COLOURS[name], -1)
    if voice is not None:
        _text(picture, voice.text, 8, 20, (255, 255, 255))
    return picture


def _text(picture: np.ndarray, text: str, x: int, y: int, colour: tuple[int, int, int]) -> None:
    """Text with a dark outline, readable on any background."""
    cv2.putText(picture, text, (x, y), FONT, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(picture, text, (x, y), FONT, 0.5, colour, 1, cv2.LINE_AA)


class AnnotatedVideo:
    """Writes annotated frames at the source's frame rate and the first frame's size (mp4v for
    .mp4, MJPG for .avi). The writer opens on the first frame, the only place a file source's
    size is known for certain."""

    def __init__(self, path: str, fps: float) -> None:
        self.path = Path(path)
        self.fps = fps
        self._writer: cv2.VideoWriter | None = None
        self.size = (0, 0)

    def _open(self, width: int, height: int) -> cv2.VideoWriter:
        fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.path.suffix.lower() == ".mp4" else "MJPG"))
        writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (width, height))
        if not writer.isOpened():
            raise SinkError(f"annotate: cannot write a video to {self.path}; use a .mp4 or .avi path in an "
                            "existing, writable folder")
        self.size = (width, height)
        return writer

    def write(self, grey: np.ndarray, tracks: list[TrackSnapshot], voice: VoiceOverlay | None) -> None:
        if self._writer is None:
            self._writer = self._open(grey.shape[1], grey.shape[0])
        picture = annotate_frame(grey, tracks, voice)
        if (picture.shape[1], picture.shape[0]) != self.size:  # a stream that changed size mid-way
            picture = cv2.resize(picture, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(picture)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
