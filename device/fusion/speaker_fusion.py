"""Who is most likely speaking, and what that person's face and the voice say together.

One microphone hears the room, not a face, so the voice is fused with one track only: the only
face, else the largest box (the person nearest the device, who is most likely the one talking).
It is re-fused only when a new voice reading arrives (every audio hop, 0.5 s by default) or the
speaker changes, so a fused `change` event can come at most once per hop, never once per frame.

Each reading's fusion is averaged over the speaker's utterance (`audio.utterance_alpha`, as the
voice's own utterance emotion) before the face's hysteresis picks the emotion: one 2 s window hears
part of a sentence, often its trailing silence, and the product rule turns the small probabilities
of two confident, disagreeing modalities into a coin toss, so the latest reading alone flipped the
fused emotion about 18 times per voiced minute and was right less often at the end of an utterance
than the average (docs/voice.md, "Utterances").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from device.audio.voice_provider import Fuser, VoiceReading
from device.events.emotion_smoother import TrackEmotion
from device.vision.face_tracker import Track


def likely_speaker(tracks: Sequence[Track]) -> Track | None:
    """The only track, else the one with the largest box (ties: the older track); None when empty."""
    if not tracks:
        return None
    return max(tracks, key=lambda t: (t.box.w * t.box.h, -t.track_id))


class SpeakerFusion:
    """The fused emotion of the current speaker, updated once per voice reading."""

    def __init__(self, fuser: Fuser, margin: float, alpha: float) -> None:
        self.fuser = fuser
        self.margin = margin
        self.alpha = alpha
        self.track_id: int | None = None
        self.method = ""
        self.emotion = TrackEmotion()
        self._reading_time: float | None = None

    def clear(self) -> None:
        """Forget the speaker (no fresh voice): when voice returns, its first fusion is no `change`."""
        self.track_id, self.method, self.emotion, self._reading_time = None, "", TrackEmotion(), None

    def update(self, track_id: int, face: np.ndarray, reading: VoiceReading) -> int | None:
        """Fuse the speaker's face with a voiced reading into their average; return the previous
        fused dominant class when this changed it (hysteresis `margin`), else None."""
        if track_id == self.track_id and reading.timestamp == self._reading_time:
            return None
        if track_id != self.track_id:
            self.clear()
        fused = self.fuser.fuse(face, reading.face_probabilities)
        self.track_id, self.method, self._reading_time = track_id, fused.method, reading.timestamp
        return self.emotion.update(fused.probabilities, self.alpha, self.margin)
