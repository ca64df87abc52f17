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
from pathlib import Path

import numpy as np

from device.audio.audio_sources import AudioSource, AudioSourceError, open_audio_source
from device.audio.log_mel import SAMPLE_RATE, WINDOW_S, WINDOW_SAMPLES
from device.audio.vad import VadDecision, detect_voice
from device.audio.voice_classifier import VoiceClassifier
from device.runtime.tflite_model import ModelLoadError
from device.runtime.voice_labels import VOICE_LABELS, voice_to_face_probabilities

WAIT_TIMEOUT_S = 1.0  # how long a hop may be late before the thread checks the source again


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
    """Keyword arguments are the config's [audio] keys, so `VoiceListener(**config_audio)` works."""

    def __init__(self, enabled: bool = True, source: str = "pyaudio", file: str | Path | None = None,
                 device: str | int | None = None, required: bool = False, hop_s: float = 0.5,
                 window_s: float = WINDOW_S, vad_threshold_db: float = -45.0,
                 model: str | Path = "models/voice_cnn_int8.tflite") -> None:
        if abs(window_s - WINDOW_S) > 1e-9:
            raise ValueError(f"audio.window_s = {window_s}: the voice model takes {WINDOW_S:g} s windows")
        if hop_s <= 0:
            raise ValueError(f"audio.hop_s = {hop_s}: must be positive (e.g. 0.5)")
        self.enabled, self.required = enabled, required
        self.source_kind, self.file, self.device, self.model_path = source, file, device, model
        self.hop_samples = round(hop_s * SAMPLE_RATE)
        self.vad_threshold_db = vad_threshold_db
        self._lock = threading.Lock()
        self._latest: VoiceReading | None = None
        self._status = ListenerStatus("stopped" if enabled else "unavailable",
                                      "" if enabled else "audio.enabled = false")
        self._stats = ListenerStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._source: AudioSource | None = None
        self._classifier: VoiceClassifier | None = None

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
        """Open the model and the source and start listening.

        A failure raises when audio is required, else leaves the listener "unavailable" with the
        reason, so the caller can run on video alone.
        """
        if not self.enabled:
            return
        try:
            self._classifier = VoiceClassifier(self.model_path)
            self._source = open_audio_source(self.source_kind, self.file, self.device)
            self._source.start()
        except (AudioSourceError, ModelLoadError) as exc:
            self._source = None
            self._set_status("unavailable", str(exc))
            if self.required:
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
                    self._set_status("finished" if self.source_kind == "file" else "unavailable",
                                     "end of file" if self.source_kind == "file"
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
            self._publish(self._classify(window))
            end += self.hop_samples

    def _classify(self, window: np.ndarray) -> VoiceReading:
        vad = detect_voice(window, self.vad_threshold_db)
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
