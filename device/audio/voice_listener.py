"""The daemon's ears: a background thread that keeps the latest voice emotion reading ready.

The video loop must never wait for audio, so the listener owns its audio source and runs VAD and
the classifier on its own thread, once per hop of new audio, and the pipeline just asks for
`latest()`. When the microphone or model cannot be used and audio is not required, the listener
says so in `status` and the daemon carries on with video alone.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from device.audio.audio_sources import AudioSource, open_audio_source
from device.audio.log_mel import SAMPLE_RATE, WINDOW_SAMPLES
from device.audio.vad import BACKGROUND_S, VadDecision, detect_voice, room_threshold_db
from device.audio.voice_classifier import VoiceClassifier
from device.config import AudioSection
from device.errors import AudioSourceError
from device.runtime.voice_labels import VOICE_LABELS, voice_to_face_probabilities

WAIT_TIMEOUT_S = 1.0  # how long a hop may be late before the thread checks the source again
BACKGROUND_SAMPLES = round(BACKGROUND_S * SAMPLE_RATE)


def gate_window(section: AudioSection, recent: np.ndarray) -> VadDecision:
    """The VAD verdict on the window that ends `recent` (up to BACKGROUND_S of the latest audio,
    whose background sets the gate's level): the one rule for the listener and its offline replay."""
    threshold = room_threshold_db(recent, section.vad_quiet_threshold_db, section.vad_threshold_db,
                                  section.vad_room_margin_db)
    return detect_voice(recent[-WINDOW_SAMPLES:], threshold, section.vad_margin_db)


@dataclass(frozen=True)
class VoiceReading:
    """One hop's verdict: VAD always; probabilities only when the window held voice."""

    timestamp: float  # time.time() when the window was classified
    vad: VadDecision
    probabilities: np.ndarray | None = None  # over VOICE_LABELS
    face_probabilities: np.ndarray | None = None  # the same mapped onto FACE_LABELS (calm → neutral)

    @property
    def voiced(self) -> bool:
        return self.vad.voiced

    @property
    def dominant(self) -> str | None:
        return None if self.probabilities is None else VOICE_LABELS[int(np.argmax(self.probabilities))]


@dataclass(frozen=True)
class ListenerStatus:
    state: str  # "running", "finished" (a file played out), "stopped" or "unavailable"
    reason: str = ""
    source: str = ""


@dataclass
class ListenerStats:
    windows: int = 0
    voiced_windows: int = 0
    classify_ms_total: float = 0.0
    skipped_hops: int = 0  # hops dropped because the thread fell behind the audio

    def as_dict(self) -> dict:
        mean = self.classify_ms_total / self.voiced_windows if self.voiced_windows else 0.0
        return {"windows": self.windows, "voiced_windows": self.voiced_windows,
                "classify_ms_mean": round(mean, 3), "skipped_hops": self.skipped_hops}


class VoiceListener:
    """Listens as the config's [audio] section says, with a voice model the caller opened (once:
    the same classifier whose card was checked at start-up)."""

    def __init__(self, section: AudioSection, classifier: VoiceClassifier) -> None:
        self.section = section
        self.hop_samples = round(section.hop_s * SAMPLE_RATE)
        self._lock = threading.Lock()
        self._latest: VoiceReading | None = None
        self._status = ListenerStatus("stopped")
        self._stats = ListenerStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._source: AudioSource | None = None
        self._classifier = classifier

    @property
    def status(self) -> ListenerStatus:
        with self._lock:
            return self._status

    def stats(self) -> dict:
        with self._lock:
            return self._stats.as_dict()

    def latest(self) -> VoiceReading | None:
        with self._lock:
            return self._latest

    def _set_status(self, state: str, reason: str = "") -> None:
        with self._lock:
            self._status = ListenerStatus(state, reason, self._source.name if self._source else "")

    def start(self) -> None:
        """Open the source and start listening.

        A failure raises when audio is required, else leaves the listener "unavailable" with the
        reason, so the caller can run on video alone. A required file shorter than one window
        would never give a reading: that is refused too.
        """
        section = self.section
        try:
            self._source = open_audio_source(section.source, section.file, section.device)
            if section.required:
                self._source.check_long_enough(WINDOW_SAMPLES)
            self._source.start()
        except AudioSourceError as exc:
            self._source = None
            self._set_status("unavailable", str(exc))
            if section.required:
                raise
            return
        self._stop.clear()
        self._set_status("running")
        self._thread = threading.Thread(target=self._run, name="voice-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        if self._source is not None:
            self._source.stop()
            if self.status.state == "running":
                self._set_status("stopped")

    def _run(self) -> None:
        buffer = self._source.buffer
        end = WINDOW_SAMPLES
        while not self._stop.is_set():
            if not buffer.wait_for(end, WAIT_TIMEOUT_S):
                if self._source.finished:
                    self._set_status("finished" if self.section.source == "file" else "unavailable",
                                     "end of file" if self.section.source == "file"
                                     else f"{self._source.name} stopped delivering audio")
                    return
                continue
            window = buffer.window(end, WINDOW_SAMPLES)
            if window is None:  # fell behind by more than the ring buffer: jump to the newest hop
                newest = buffer.total - (buffer.total - end) % self.hop_samples
                with self._lock:
                    self._stats.skipped_hops += (newest - end) // self.hop_samples
                end = newest
                continue
            recent = buffer.window(end, min(end, BACKGROUND_SAMPLES))
            self._publish(self._classify(window, window if recent is None else recent))
            end += self.hop_samples

    def _classify(self, window: np.ndarray, recent: np.ndarray) -> VoiceReading:
        vad = gate_window(self.section, recent)
        if not vad.voiced:
            return VoiceReading(time.time(), vad)
        started = time.perf_counter()
        probs = self._classifier.classify_window(window)
        with self._lock:
            self._stats.classify_ms_total += (time.perf_counter() - started) * 1e3
        return VoiceReading(time.time(), vad, probs, voice_to_face_probabilities(probs))

    def _publish(self, reading: VoiceReading) -> None:
        with self._lock:
            self._latest = reading
            self._stats.windows += 1
            self._stats.voiced_windows += int(reading.voiced)
