"""What the voice says over an utterance: its readings since the last silence, averaged.

A reading is one 2 s window every 0.5 s hop: a piece of a sentence, often its trailing silence. The
latest window alone was right at the end of an utterance on 46% of RAVDESS actors 17-20's clips,
which the model scores at 70% whole, and changed its emotion 37 times per voiced minute. The
utterance's average (a plain mean over its first 1/alpha readings, then an exponential average,
with the face's hysteresis) was right on 65% of them with 14 changes: docs/voice.md, "Utterances".
The same average, over fused readings, gives the speaker's fused emotion (`SpeakerFusion`).
"""

from __future__ import annotations

from device.audio.voice_provider import VoiceReading
from device.events.emotion_smoother import TrackEmotion


class VoiceUtterance:
    """The running average of one utterance's voiced readings; silence (or no fresh reading) ends it."""

    def __init__(self, alpha: float, margin: float) -> None:
        self.alpha = alpha
        self.margin = margin
        self.emotion = TrackEmotion()
        self.readings = 0
        self._reading_time: float | None = None

    def clear(self) -> None:
        """The utterance is over: the next voiced reading starts a new one."""
        self.emotion, self.readings, self._reading_time = TrackEmotion(), 0, None

    def hear(self, reading: VoiceReading) -> None:
        """Fold in a voiced reading once (the pipeline sees the same reading on several frames)."""
        if reading.probabilities is None or reading.timestamp == self._reading_time:
            return
        self._reading_time = reading.timestamp
        self.readings += 1
        self.emotion.update(reading.probabilities, self.alpha, self.margin)
