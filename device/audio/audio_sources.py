"""Where the daemon's audio comes from: a microphone through pyaudio, or a WAV/FLAC file.

Both deliver 16 kHz mono int16 into the same ring buffer, so the listener never knows which one
it reads. pyaudio is imported only when a microphone is asked for: a desktop or CI machine
without PortAudio still runs everything else, and a missing, unknown or busy device becomes an
`AudioSourceError` that says what to do instead of a traceback.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from device.audio.log_mel import SAMPLE_RATE
from device.audio.resample import resample
from device.errors import AudioSourceError
from device.runtime.native_output import native_output_to_debug_log


class RingBuffer:
    """The last `capacity` int16 samples, written by a capture thread and read by the listener."""

    def __init__(self, capacity: int) -> None:
        self._data = np.zeros(capacity, dtype=np.int16)
        self._total = 0
        self._cond = threading.Condition()

    @property
    def total(self) -> int:
        """Samples written since the start (never wraps): the listener's clock."""
        with self._cond:
            return self._total

    def write(self, chunk: np.ndarray) -> None:
        chunk = np.asarray(chunk, dtype=np.int16)
        written = len(chunk)
        chunk = chunk[-len(self._data):]
        with self._cond:
            start = (self._total + written - len(chunk)) % len(self._data)
            first = min(len(chunk), len(self._data) - start)
            self._data[start: start + first] = chunk[:first]
            self._data[: len(chunk) - first] = chunk[first:]
            self._total += written
            self._cond.notify_all()

    def wait_for(self, total: int, timeout: float) -> bool:
        """Block until `total` samples have been written or `timeout` seconds pass."""
        with self._cond:
            return self._cond.wait_for(lambda: self._total >= total, timeout)

    def window(self, end: int, length: int) -> np.ndarray | None:
        """Samples [end - length, end) in absolute numbering, or None when no longer (or not yet) held."""
        with self._cond:
            if end > self._total or end - length < max(0, self._total - len(self._data)) or length > end:
                return None
            index = np.arange(end - length, end) % len(self._data)
            return self._data[index].copy()


class AudioSource(Protocol):
    """What the voice listener needs from any input."""

    buffer: RingBuffer
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    @property
    def finished(self) -> bool:
        """True once a finite source (a file) has delivered everything."""
        ...

    def check_long_enough(self, samples: int) -> None:
        """Raise AudioSourceError when a finite source holds fewer samples than this."""


def read_audio_file(path: str | Path) -> np.ndarray:
    """A WAV/FLAC/OGG file as float32 16 kHz mono in [-1, 1] (channels averaged, resampled)."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise AudioSourceError(f"audio file {path} does not exist; check audio.file in the config")
    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise AudioSourceError(
            f"audio file {path} cannot be read ({exc}); use a WAV or FLAC file") from None
    return resample(audio.mean(axis=1), rate, SAMPLE_RATE)


def to_int16(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


class FileAudioSource:
    """Plays a file into the ring buffer at real-time pace (or `speed` times faster), as a
    microphone would, optionally looping; for desktops, demos and tests."""

    def __init__(self, file: str | Path, loop: bool = False, speed: float = 1.0,
                 chunk_s: float = 0.1, buffer_s: float = 10.0) -> None:
        self.name = f"file {file}"
        self.samples = to_int16(read_audio_file(file))
        self.loop = loop
        self.speed = speed
        self.chunk = max(1, round(chunk_s * SAMPLE_RATE))
        self.buffer = RingBuffer(round(buffer_s * SAMPLE_RATE))
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def check_long_enough(self, samples: int) -> None:
        if len(self.samples) < samples:
            raise AudioSourceError(
                f"{self.name} holds {len(self.samples) / SAMPLE_RATE:.2f} s of audio, shorter than one "
                f"{samples / SAMPLE_RATE:g} s voice window: it would never give a reading; use a longer "
                "recording")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._play, name="file-audio", daemon=True)
        self._thread.start()

    def _play(self) -> None:
        started = time.monotonic()
        position = played = 0
        while not self._stop.is_set():
            if position >= len(self.samples):
                if not self.loop or len(self.samples) == 0:
                    break
                position = 0
            chunk = self.samples[position: position + self.chunk]
            self.buffer.write(chunk)
            position += len(chunk)
            played += len(chunk)
            delay = started + played / (SAMPLE_RATE * self.speed) - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
        self._done.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


def _import_pyaudio():
    try:
        import pyaudio
    except ImportError:
        raise AudioSourceError(
            "pyaudio is not installed: `pip install pyaudio` (it builds from source and needs "
            "`apt install portaudio19-dev`), or set audio.source = \"file\"") from None
    return pyaudio


def find_input_device(pa, device: str | int | None) -> int | None:
    """Resolve a device index or (part of a) name to a PortAudio input index; None = default."""
    if device is None or device == "":
        return None
    inputs = {}
    for index in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(index)
        if info.get("maxInputChannels", 0) > 0:
            inputs[index] = str(info.get("name", ""))
    if isinstance(device, int) or str(device).isdigit():
        if int(device) in inputs:
            return int(device)
    else:
        matches = [i for i, name in inputs.items() if str(device).lower() in name.lower()]
        if matches:
            return matches[0]
    listing = ", ".join(f"{i}: {name}" for i, name in inputs.items()) or "none"
    raise AudioSourceError(f"no audio input device {device!r}; input devices here: {listing}. "
                           "Set audio.device to one of these indexes or names")


class PyAudioSource:
    """16 kHz mono int16 from a microphone; PortAudio's callback thread fills the ring buffer."""

    def __init__(self, device: str | int | None = None, frames_per_buffer: int = 1600,
                 buffer_s: float = 10.0) -> None:
        self.device = device
        self.name = f"microphone {device if device not in (None, '') else 'default'}"
        self.frames_per_buffer = frames_per_buffer
        self.buffer = RingBuffer(round(buffer_s * SAMPLE_RATE))
        self._pyaudio = _import_pyaudio()
        self._pa = None
        self._stream = None

    @property
    def finished(self) -> bool:
        return self._stream is not None and not self._stream.is_active()

    def check_long_enough(self, samples: int) -> None:
        """A microphone has no end."""

    def _callback(self, data: bytes, frame_count: int, time_info: dict, status: int):
        self.buffer.write(np.frombuffer(data, dtype=np.int16))
        return None, self._pyaudio.paContinue

    def start(self) -> None:
        with native_output_to_debug_log("PortAudio probing the sound devices"):
            self._pa = self._pyaudio.PyAudio()
        try:
            index = find_input_device(self._pa, self.device)
            self._stream = self._pa.open(
                format=self._pyaudio.paInt16, channels=1, rate=SAMPLE_RATE, input=True,
                input_device_index=index, frames_per_buffer=self.frames_per_buffer,
                stream_callback=self._callback)
            self._stream.start_stream()
        except (OSError, ValueError) as exc:
            self.stop()
            raise AudioSourceError(
                f"cannot open {self.name} at 16 kHz mono ({exc}); it may be busy (another program "
                "is recording), unplugged or unable to record 16 kHz mono") from None
        except AudioSourceError:
            self.stop()
            raise

    def stop(self) -> None:
        if self._stream is not None:
            try:
                self._stream.stop_stream()
                self._stream.close()
            except OSError:
                pass
            self._stream = None
        if self._pa is not None:
            self._pa.terminate()
            self._pa = None


def open_audio_source(source: str, file: str | Path | None = None,
                      device: str | int | None = None, loop: bool = False) -> AudioSource:
    """The config's [audio] source ("file" or "pyaudio") as a ready-to-start AudioSource."""
    if source == "file":
        if not file:
            raise AudioSourceError('audio.source = "file" needs audio.file (a WAV or FLAC path)')
        return FileAudioSource(file, loop=loop)
    if source == "pyaudio":
        return PyAudioSource(device)
    raise AudioSourceError(f'unknown audio.source {source!r}; use "file" or "pyaudio"')
