"""RAVDESS speech clips found by their file names (`MM-VV-EE-II-SS-RR-AA.wav|.flac`).

The labels live only in the name, so a name that does not parse is an error that names the
file, never a silent skip that would shift class counts. Actors are chosen by number so a
speaker-independent split ("1-16" vs "17-20") can be stated on the command line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.audio.audio_sources import AudioSourceError, read_audio_file
from device.runtime.voice_labels import VOICE_LABELS
from training.data_errors import DataError

AUDIO_SUFFIXES = (".wav", ".flac")
_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
NAME_FORMAT = ("MM-VV-EE-II-SS-RR-AA (two digits each: modality, vocal channel, emotion 01-08, "
               "intensity 01-02, statement 01-02, repetition 01-02, actor 01-24)")


@dataclass(frozen=True)
class RavdessName:
    """The fields of one file name; `emotion` is the 0-based index into VOICE_LABELS."""

    modality: int
    vocal_channel: int
    emotion: int
    intensity: int
    statement: int
    repetition: int
    actor: int

    @property
    def label(self) -> str:
        return VOICE_LABELS[self.emotion]


def parse_name(path: str | Path) -> RavdessName:
    path = Path(path)
    match = _NAME.match(path.stem)
    if not match:
        raise DataError(f"{path}: file name does not follow the RAVDESS convention {NAME_FORMAT}")
    modality, channel, emotion, intensity, statement, repetition, actor = (int(g) for g in match.groups())
    problems = []
    if not 1 <= emotion <= len(VOICE_LABELS):
        problems.append(f"emotion {emotion:02d} is not 01-08")
    if intensity not in (1, 2):
        problems.append(f"intensity {intensity:02d} is not 01 or 02")
    if not 1 <= actor <= 99:
        problems.append(f"actor {actor:02d} is not a valid actor number")
    if problems:
        raise DataError(f"{path}: {'; '.join(problems)} (expected {NAME_FORMAT})")
    return RavdessName(modality, channel, emotion - 1, intensity, statement, repetition, actor)


def parse_actors(spec: str) -> tuple[int, ...]:
    """ "1-16", "17,18" or "1-4,9" → sorted actor numbers."""
    actors: set[int] = set()
    for part in (p.strip() for p in str(spec).split(",")):
        bounds = part.split("-")
        if not part or len(bounds) > 2 or not all(b.strip().isdigit() for b in bounds):
            raise DataError(f"actor selection {spec!r}: use ranges and lists such as 1-16 or 17,18")
        low, high = int(bounds[0]), int(bounds[-1])
        if low > high:
            raise DataError(f"actor selection {spec!r}: range {part} runs backwards")
        actors.update(range(low, high + 1))
    return tuple(sorted(actors))


@dataclass(frozen=True)
class Clip:
    path: Path
    name: RavdessName


def find_clips(root: str | Path, actors: str | tuple[int, ...]) -> list[Clip]:
    """Every speech clip under `root` from the chosen actors, sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: RAVDESS folder not found (expected Actor_XX/*.flac or *.wav under it)")
    chosen = parse_actors(actors) if isinstance(actors, str) else tuple(actors)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    clips = [Clip(p, parse_name(p)) for p in files]
    clips = [c for c in clips if c.name.actor in chosen]
    if not clips:
        raise DataError(f"{root}: no RAVDESS .wav/.flac clips for actors {actors}")
    return clips


def read_clip(clip: Clip) -> np.ndarray:
    """The clip as float32 16 kHz mono; an unreadable file is a DataError naming it."""
    try:
        return read_audio_file(clip.path)
    except AudioSourceError as exc:
        raise DataError(str(exc)) from None


def clip_labels(clips: list[Clip]) -> np.ndarray:
    return np.array([c.name.emotion for c in clips], dtype=np.int64)
