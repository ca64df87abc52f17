"""A labelled audio stream for the voice end to end: RAVDESS clips with silence between them.

    streams, timeline = generate(ravdess, VoiceClipSpec(seed=17), out_dir)

The clips of the test actors (17-20 by default) play one after another in a seeded random order,
each followed by a silent gap of random length, as one 16 kHz mono WAV. Noisy versions of the
same stream add, over its whole length (gaps included), either babble (several talkers at once,
made from the speech of other actors, 01-16 by default, never the test actors) or broadband noise
(pink: equal power per octave, like a fan or traffic more than a hiss), at a fixed level. The
level is set from the clips: the noise is SNR dB below the median clip's speech level, so a loud
(angry) clip sits above the nominal SNR and a quiet (sad) one below it, as in a room whose noise
does not follow the speaker. Each clip's own SNR is in the timeline.

A still video of a face (scikit-image's public-domain astronaut) as long as the stream goes with
it: the daemon reports the voice inside face events, so it needs a face to talk about.

Everything comes from one seeded generator and the file names carry a key of the spec, so the
same spec gives the same files; nothing from the dataset is written besides these streams, which
go to a scratch folder (runs/ is not tracked).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from device.audio.log_mel import SAMPLE_RATE
from device.audio.vad import frame_levels_db

TIMELINE_VERSION = 1
SPEECH_RANGE_DB = 25.0  # a clip's speech level: mean power of its frames within this of its loudest
CONDITIONS = (("clean", None, None), ("babble 20 dB", "babble", 20.0), ("broadband 20 dB", "broadband", 20.0),
              ("babble 10 dB", "babble", 10.0), ("broadband 10 dB", "broadband", 10.0))


@dataclass(frozen=True)
class VoiceClipSpec:
    seed: int = 17
    actors: str = "17-20"
    babble_actors: str = "1-16"
    clips: int = 0  # 0: every clip of the actors
    gap_s: tuple[float, float] = (1.0, 2.0)  # silence after each clip
    lead_s: float = 1.0  # silence before the first clip
    babble_talkers: int = 4
    video_fps: float = 5.0

    def key(self, data_id: str) -> str:
        text = json.dumps({"spec": asdict(self), "data": data_id, "v": TIMELINE_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def speech_level_db(samples: np.ndarray) -> float:
    """Mean power (dBFS, as frame levels) of a clip's frames within SPEECH_RANGE_DB of its loudest."""
    levels = frame_levels_db(samples)
    loud = levels[levels > levels.max() - SPEECH_RANGE_DB]
    return float(10.0 * np.log10(np.mean(10.0 ** (loud / 10.0))))


def power_db(samples: np.ndarray) -> float:
    return float(10.0 * np.log10(np.mean(np.asarray(samples, np.float64) ** 2) + 1e-20))


def pink_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with a 1/f power spectrum (-3 dB per octave) above 20 Hz, unit power."""
    spectrum = np.fft.rfft(rng.normal(size=length))
    freqs = np.fft.rfftfreq(length, 1.0 / SAMPLE_RATE)
    spectrum *= 1.0 / np.sqrt(np.maximum(freqs, 20.0))
    noise = np.fft.irfft(spectrum, n=length)
    return noise / np.sqrt(np.mean(noise ** 2))


def babble_noise(length: int, talker_clips: list[np.ndarray], talkers: int,
                 rng: np.random.Generator) -> np.ndarray:
    """`talkers` voices at once, each a random run of clips played back to back (no gaps) and
    brought to the same speech level, summed; unit power."""
    total = np.zeros(length)
    for _ in range(talkers):
        track, filled = [], 0
        while filled < length:
            clip = talker_clips[int(rng.integers(len(talker_clips)))]
            track.append(clip * 10.0 ** (-speech_level_db(clip) / 20.0))
            filled += len(clip)
        total += np.concatenate(track)[:length]
    return total / np.sqrt(np.mean(total ** 2))


def layout(lengths: list[int], spec: VoiceClipSpec, rng: np.random.Generator) -> tuple[list[int], int]:
    """Start sample of every clip and the stream's length (a lead, then clip + gap after each)."""
    starts, position = [], round(spec.lead_s * SAMPLE_RATE)
    for length in lengths:
        starts.append(position)
        position += length + round(rng.uniform(*spec.gap_s) * SAMPLE_RATE)
    return starts, position


def build(clips: list[np.ndarray], labels: list[int], names: list[str], talker_clips: list[np.ndarray],
          spec: VoiceClipSpec) -> tuple[dict[str, np.ndarray], dict]:
    """The streams (float32 per condition) and the timeline, from clips already read."""
    rng = np.random.default_rng(spec.seed)
    order = rng.permutation(len(clips))
    if spec.clips:
        order = order[:spec.clips]
    starts, length = layout([len(clips[i]) for i in order], spec, rng)
    clean = np.zeros(length)
    levels = []
    for i, start in zip(order, starts, strict=True):
        clean[start:start + len(clips[i])] = clips[i]
        levels.append(speech_level_db(clips[i]))
    reference = float(np.median(levels))
    streams = {"clean": clean}
    noise_power = {}
    for name, kind, snr in CONDITIONS[1:]:
        noise_rng = np.random.default_rng([spec.seed, 1 if kind == "babble" else 2])
        noise = (babble_noise(length, talker_clips, spec.babble_talkers, noise_rng) if kind == "babble"
                 else pink_noise(length, noise_rng))
        noise *= 10.0 ** ((reference - snr) / 20.0)
        noise_power[name] = power_db(noise)
        streams[name] = clean + noise
    for name, stream in streams.items():
        peak = np.abs(stream).max()
        if name != "clean" and peak >= 1.0:  # a noisy stream stays inside full scale (its SNRs unchanged)
            streams[name] = stream * (0.99 / peak)
    timeline = {
        "version": TIMELINE_VERSION, "spec": asdict(spec), "sample_rate": SAMPLE_RATE,
        "samples": length, "seconds": length / SAMPLE_RATE, "reference_speech_db": reference,
        "conditions": [{"name": n, "noise": k, "snr_db": s, "noise_db": noise_power.get(n)}
                       for n, k, s in CONDITIONS],
        "clips": [{"index": n, "name": names[i], "label": int(labels[i]), "start": int(start),
                   "end": int(start + len(clips[i])), "speech_db": level,
                   "snr_db": {name: level - reference + snr for name, _, snr in CONDITIONS[1:]}}
                  for n, (i, start, level) in enumerate(zip(order, starts, levels, strict=True))],
    }
    return {k: v.astype(np.float32) for k, v in streams.items()}, timeline


def face_video(path: Path, seconds: float, fps: float) -> Path:
    """A still 640x480 video of a public-domain face (scikit-image's astronaut), `seconds` long."""
    import cv2
    from skimage import data

    face = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY), (480, 480))
    frame = np.full((480, 640), 128, np.uint8)
    frame[:, 80:560] = face
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480), False)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path} (mp4v)")
    for _ in range(int(np.ceil(seconds * fps))):
        writer.write(frame)
    writer.release()
    return path


def slug(condition: str) -> str:
    return condition.replace(" ", "_")


def generate(ravdess: Path, spec: VoiceClipSpec, out_dir: Path) -> tuple[dict[str, Path], Path, Path]:
    """WAVs per condition, the face video and the timeline in `out_dir` (reused when present)."""
    import soundfile

    from training.ravdess_data import clip_labels, find_clips, read_clip

    clips = find_clips(str(ravdess), spec.actors)
    talkers = find_clips(str(ravdess), spec.babble_actors)
    overlap = {c.name.actor for c in clips} & {c.name.actor for c in talkers}
    if overlap:
        raise ValueError(f"babble actors {sorted(overlap)} are also test actors; babble must be other people")
    data_id = f"RAVDESS {len(clips)}+{len(talkers)} clips {sum(c.path.stat().st_size for c in clips)}"
    key = spec.key(data_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    timeline_path = out_dir / f"voice_{key}.json"
    paths = {name: out_dir / f"voice_{key}_{slug(name)}.wav" for name, _, _ in CONDITIONS}
    video = out_dir / f"voice_{key}_face.mp4"
    if timeline_path.exists() and video.exists() and all(p.exists() for p in paths.values()):
        return paths, video, timeline_path
    streams, timeline = build([read_clip(c) for c in clips], list(clip_labels(clips)),
                              [c.path.name for c in clips], [read_clip(c) for c in talkers], spec)
    for name, path in paths.items():
        soundfile.write(str(path), streams[name], SAMPLE_RATE, subtype="PCM_16")
    face_video(video, timeline["seconds"] + 1.0, spec.video_fps)
    timeline["files"] = {name: path.name for name, path in paths.items()}
    timeline_path.write_text(json.dumps(timeline, indent=1))
    return paths, video, timeline_path
