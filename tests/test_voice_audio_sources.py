"""Audio sources: the ring buffer, the file source, and pyaudio through a fake ALSA microphone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from device.audio.audio_sources import (
    AudioSourceError,
    FileAudioSource,
    RingBuffer,
    open_audio_source,
    read_audio_file,
    to_int16,
)
from tests.voice_fixtures import tone

ROOT = Path(__file__).resolve().parent.parent


def test_ring_buffer_keeps_the_newest_samples_across_wrap_around():
    ring = RingBuffer(10)
    ring.write(np.arange(7, dtype=np.int16))
    ring.write(np.arange(7, 15, dtype=np.int16))
    assert ring.total == 15
    assert ring.window(15, 10).tolist() == list(range(5, 15))
    assert ring.window(12, 4).tolist() == [8, 9, 10, 11]
    assert ring.window(15, 11) is None  # older than the buffer holds
    assert ring.window(16, 2) is None  # not written yet
    ring.write(np.arange(100, 125, dtype=np.int16))  # longer than the buffer: keeps its tail
    assert ring.window(40, 10).tolist() == list(range(115, 125))


def test_ring_buffer_wait_for_wakes_on_write():
    ring = RingBuffer(100)
    assert not ring.wait_for(5, timeout=0.01)
    ring.write(np.zeros(5, dtype=np.int16))
    assert ring.wait_for(5, timeout=0.01)


def test_file_source_plays_the_resampled_file_in_order(tmp_path: Path):
    path = tmp_path / "tone.wav"
    soundfile.write(path, tone(1.0, 440, 0.3, rate=48_000), 48_000)
    expected = to_int16(read_audio_file(path))
    source = FileAudioSource(path, speed=20.0)
    source.start()
    deadline = time.monotonic() + 5
    while not source.finished and time.monotonic() < deadline:
        time.sleep(0.01)
    source.stop()
    assert source.finished and source.buffer.total == len(expected) == 16_000
    assert np.array_equal(source.buffer.window(16_000, 16_000), expected)
    peak = np.abs(np.fft.rfft(expected.astype(np.float64))).argmax()  # 1 s of audio: bin = Hz
    assert abs(peak - 440) <= 1


def test_file_source_paces_like_a_microphone_and_loops(tmp_path: Path):
    path = tmp_path / "short.flac"
    soundfile.write(path, tone(0.2, 300, 0.3), 16_000)
    source = FileAudioSource(path, loop=True)
    source.start()
    time.sleep(0.5)
    total, finished = source.buffer.total, source.finished
    source.stop()
    assert not finished and total > 2 * 3_200  # looping: more than twice the 0.2 s file
    assert total <= 0.9 * 16_000  # about real time, not as fast as possible


def test_file_source_errors_say_what_to_do(tmp_path: Path):
    with pytest.raises(AudioSourceError, match="does not exist"):
        FileAudioSource(tmp_path / "missing.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"definitely not audio")
    with pytest.raises(AudioSourceError, match=r"junk\.wav cannot be read"):
        FileAudioSource(junk)
    with pytest.raises(AudioSourceError, match=r"needs audio\.file"):
        open_audio_source("file")
    with pytest.raises(AudioSourceError, match=r"unknown audio\.source"):
        open_audio_source("bluetooth")


FAKE_MIC_SCRIPT = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from device.audio.audio_sources import AudioSourceError, PyAudioSource

    result = {}
    source = PyAudioSource(sys.argv[1])
    first = []
    write = source.buffer.write
    def recording_write(chunk):
        if sum(len(c) for c in first) < 16000:
            first.append(np.array(chunk))
        write(chunk)
    source.buffer.write = recording_write
    source.start()
    deadline = time.monotonic() + 10
    while source.buffer.total < 16000 and time.monotonic() < deadline:
        time.sleep(0.01)
    source.stop()
    result["total"] = source.buffer.total
    result["first"] = np.concatenate(first)[:16000].tolist() if first else []
    try:
        PyAudioSource("no such microphone").start()
    except AudioSourceError as exc:
        result["missing"] = str(exc)
    print("RESULT " + json.dumps(result))
""")


@pytest.mark.parametrize("device", ["default", "1"])
def test_pyaudio_records_a_fake_alsa_microphone(tmp_path: Path, device: str):
    pytest.importorskip("pyaudio", reason="pyaudio is not installed (pip install pyaudio)")
    expected = to_int16(tone(1.0, 440, 0.3))
    raw = tmp_path / "mic.raw"
    expected.astype("<i2").tofile(raw)
    (tmp_path / ".asoundrc").write_text(
        "pcm.nullout { type null }\n"
        f'pcm.!default {{ type file slave.pcm "nullout" file "/dev/null" infile "{raw}" format "raw" }}\n')
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", FAKE_MIC_SCRIPT, device], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, run.stderr[-2000:]
    result = json.loads(lines[0][len("RESULT "):])
    assert result["total"] >= 16_000
    assert result["first"] == expected.tolist()  # the callback delivered the file, in order
    assert "no audio input device 'no such microphone'" in result["missing"]
    assert "default" in result["missing"]  # and it lists what there is


def test_missing_pyaudio_is_a_clear_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "pyaudio", None)  # makes `import pyaudio` raise ImportError
    with pytest.raises(AudioSourceError, match="pip install pyaudio"):
        open_audio_source("pyaudio", device="default")
