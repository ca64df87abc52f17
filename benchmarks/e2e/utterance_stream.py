"""`python -m benchmarks.e2e.utterance_stream` (`make e2e-utterance`): voice and fused emotion per utterance.

The daemon hears a 2 s window every 0.5 s hop. Each event's `voice` carries that window's emotion and
the average of the utterance so far (`voice.utterance`, what Home Assistant's voice sensor shows),
and the speaker's `fused` emotion averages the face fused with each reading; both average with
`audio.utterance_alpha` and the face's hysteresis. This scores the device's own `VoiceUtterance`
and `SpeakerFusion` over the windows of `make e2e-voice`'s stream (RAVDESS actors, silence between
clips; the device's VAD and classifier run offline over the same windows, identical to the daemon's
readings, which `make e2e-voice` checks), as the pipeline runs them (silence ends an utterance and
forgets the speaker). For the fused emotion each clip is paired with a FER2013 PublicTest face of
the same class scored by the face model (flip TTA as configured): class-matched pseudo-pairs as in
`training.fusion_evaluation`, since no recording here has one person's face and voice together, so
face and voice err independently, which one person's face and voice do not.

Per alpha (1: the latest reading alone), for the latest window, the utterance and the fused emotion:
how often it is right over all voiced readings and at each clip's last one (the verdict an utterance
leaves), and its changes per voiced minute (within one clip the true emotion stays the same, so
every change there is a flip-flop). Voice answers over the 8 voice classes, fused ones over the 7
face classes; the paired face alone beside them. One JSON line last, for the configured alpha.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from benchmarks.e2e.__main__ import parse_settings
from benchmarks.e2e.voice_clip import CONDITIONS, VoiceClipSpec, generate, slug
from benchmarks.e2e.voice_scorer import reading_probabilities, window_owner
from device.audio.log_mel import SAMPLE_RATE, WINDOW_SAMPLES
from device.audio.vad import VadDecision
from device.audio.voice_listener import VoiceReading
from device.audio.voice_utterance import VoiceUtterance
from device.config import Config, load_config
from device.errors import ConfigError
from device.fusion.speaker_fusion import SpeakerFusion
from device.runtime.voice_labels import VOICE_TO_FACE_INDEX, voice_to_face_probabilities

VOICED = VadDecision(voiced=True, active_fraction=1.0, level_db=0.0, floor_db=0.0)  # fusion reads no more


@dataclass
class Scores:
    """One answer over a stream: right per voiced reading, right at each clip's last one, changes."""

    right: int = 0
    last_right: int = 0
    changes: int = 0

    def merge(self, other: Scores) -> None:
        self.right, self.last_right = self.right + other.right, self.last_right + other.last_right
        self.changes += other.changes


@dataclass
class Tally:
    """Counts over one stream and pairing: the latest window alone, the voice's utterance average,
    the speaker's fused emotion (averaged too), and the paired face alone; `merge` adds another's."""

    readings: int = 0
    clips: int = 0
    face_right: int = 0
    window: Scores = field(default_factory=Scores)
    utterance: Scores = field(default_factory=Scores)
    fused: Scores = field(default_factory=Scores)

    def merge(self, other: Tally) -> None:
        self.readings, self.clips = self.readings + other.readings, self.clips + other.clips
        self.face_right += other.face_right
        for name in ANSWERS:
            getattr(self, name).merge(getattr(other, name))

    def figures(self, hop_s: float) -> dict:
        n, clips, minutes = max(self.readings, 1), max(self.clips, 1), max(self.readings, 1) * hop_s / 60
        out = {"face": self.face_right / n, "readings": self.readings, "clips": self.clips}
        for name in ANSWERS:
            scores = getattr(self, name)
            out |= {f"{name}_per_reading": scores.right / n, f"{name}_clip_end": scores.last_right / clips,
                    f"{name}_changes_per_voiced_min": scores.changes / minutes}
        return out


ANSWERS = ("window", "utterance", "fused")


def voiced_windows(readings: dict[int, dict], clips: list[dict], windows: int,
                   hop_s: float) -> list[tuple[int, int | None, np.ndarray | None]]:
    """(window, owning clip or None, voice probabilities or None when unvoiced) in stream order."""
    return [(k, window_owner(k, clips, hop_s), reading_probabilities(readings[k]) if k in readings else None)
            for k in range(windows)]


def truths_of(clip: dict) -> tuple[int, int, int]:
    """The right answer for each of ANSWERS: the clip's voice class twice, then its face class."""
    return clip["label"], clip["label"], int(VOICE_TO_FACE_INDEX[clip["label"]])


def replay_stream(windows: list[tuple[int, int | None, np.ndarray | None]], clips: list[dict],
                  faces: np.ndarray, utterance: VoiceUtterance, fusion: SpeakerFusion, hop_s: float) -> Tally:
    """Run the device's utterance average and speaker fusion over a stream as the pipeline does: an
    unvoiced window (or one over no clip) ends the utterance and forgets the speaker; a clip's
    pseudo-pair face is its speaker (track id = clip). `faces[i]` is the face model's probabilities
    for clip i's face. Voice answers are scored over the 8 voice classes, fused ones over the face's."""
    tally = Tally()
    last: dict[int, tuple[int, int, int]] = {}  # clip -> (window, utterance, fused) at its last reading
    utterance.clear()
    fusion.clear()
    window_before: int | None = None
    for k, owner, voice in windows:
        if voice is None or owner is None:
            utterance.clear()
            fusion.clear()
            window_before = None
            continue
        reading = VoiceReading(k * hop_s, VOICED, voice, voice_to_face_probabilities(voice))
        said_before = utterance.emotion.dominant
        utterance.hear(reading)
        tally.fused.changes += fusion.update(owner, faces[owner], reading) is not None
        window = int(np.argmax(voice))
        tally.window.changes += window_before is not None and window != window_before
        tally.utterance.changes += said_before is not None and utterance.emotion.dominant != said_before
        window_before = window
        answers = (window, utterance.emotion.dominant, fusion.emotion.dominant)
        truths = truths_of(clips[owner])
        tally.readings += 1
        tally.face_right += int(np.argmax(faces[owner])) == truths[-1]
        for name, answer, truth in zip(ANSWERS, answers, truths, strict=True):
            getattr(tally, name).right += answer == truth
        last[owner] = answers
    for owner, answers in last.items():
        tally.clips += 1
        for name, answer, truth in zip(ANSWERS, answers, truths_of(clips[owner]), strict=True):
            getattr(tally, name).last_right += answer == truth
    return tally


def paired_faces(face_probs: np.ndarray, face_labels: np.ndarray, clip_labels: list[int],
                 rng: np.random.Generator) -> np.ndarray:
    """For each clip, the probabilities of a random face of its class (class-matched pseudo-pair)."""
    rows = [rng.choice(np.flatnonzero(face_labels == y)) for y in clip_labels]
    return face_probs[rows]


def run_utterances(shared: Path, out: Path, spec: VoiceClipSpec, conditions: list[str], alphas: list[float],
                   pairings: int, config: Config) -> dict:
    """Print the table; return the figures for the configured alpha ({} when the datasets are absent)."""
    from benchmarks.e2e.run import FER_RELATIVE, publictest_faces
    from benchmarks.e2e_voice import model_tag, stream_readings
    from device.audio.audio_sources import read_audio_file, to_int16
    from device.audio.voice_classifier import VoiceClassifier
    from device.fusion.product_rule import Fusion
    from device.vision.face_classifier import FaceClassifier

    fer, ravdess = shared / FER_RELATIVE, shared / "ravdess"
    if not fer.is_file() or not ravdess.is_dir():
        print(f"utterances skipped: {fer} and {ravdess} are needed (faces and voices to pair)")
        return {}
    paths, _, timeline_path = generate(ravdess, spec, out)
    timeline = json.loads(timeline_path.read_text())
    clips, hop_s, margin = timeline["clips"], config.audio.hop_s, config.smoothing.margin
    clip_labels = [int(VOICE_TO_FACE_INDEX[c["label"]]) for c in clips]
    faces, face_labels, usable = publictest_faces(fer)
    classifier = FaceClassifier.for_section(config.face)
    face_probs = np.stack([classifier.classify(faces[i]) for i in usable])
    face_labels = face_labels[usable]
    voice = VoiceClassifier(Path(config.audio.model), num_threads=1)
    total_windows = (timeline["samples"] - WINDOW_SAMPLES) // round(hop_s * SAMPLE_RATE) + 1
    fuser = Fusion(config.fusion)
    results = {}
    names = {slug(name): name for name, _, _ in CONDITIONS}
    for condition in conditions:
        samples = to_int16(read_audio_file(paths[names[condition]]))
        readings = stream_readings(out, condition, samples, voice, config.audio,
                                   model_tag(Path(config.audio.model)))
        windows = voiced_windows(readings, clips, total_windows, hop_s)
        for alpha in alphas:
            tally = Tally()
            for seed in range(pairings):
                paired = paired_faces(face_probs, face_labels, clip_labels, np.random.default_rng(seed))
                tally.merge(replay_stream(windows, clips, paired, VoiceUtterance(alpha, margin),
                                          SpeakerFusion(fuser, margin, alpha), hop_s))
            results[(condition, alpha)] = tally.figures(hop_s)
    print(f"utterances over {len(clips)} clips of actors {spec.actors}: voice {config.audio.model} "
          f"(8 classes); fused ({config.fusion.method}) with {pairings} class-matched pairings of "
          f"PublicTest faces ({config.face.model}, 7 classes); hysteresis margin {margin:g}")
    print("right over all voiced readings / at each clip's last reading, changes per voiced minute")
    print(f"{'stream':16s}{'alpha':>6s}" + "".join(f"{name:>22s}" for name in ANSWERS) + f"{'face':>7s}")
    for (condition, alpha), r in results.items():
        cells = "".join(f"{100 * r[f'{name}_per_reading']:7.1f}%{100 * r[f'{name}_clip_end']:6.1f}%"
                        f"{r[f'{name}_changes_per_voiced_min']:7.1f}" for name in ANSWERS)
        mark = " (config)" if alpha == config.audio.utterance_alpha else ""
        print(f"{condition:16s}{alpha:6g}{cells}{100 * r['face']:6.1f}%{mark}")
    chosen = {c: r for (c, a), r in results.items() if a == config.audio.utterance_alpha}
    return {f"e2e_utterance_{c.lower()}_{k}": round(v, 4) for c, r in chosen.items()
            for k, v in r.items() if k not in ("readings", "clips")}


def held_out_config(overrides: list[tuple[str, str]]) -> Config:
    """The daemon's config under these settings, hearing the stream's actors with the voice model that
    never heard them (as `make e2e-voice`) unless `audio.model` is set."""
    from benchmarks.e2e_voice import DEFAULT_MODEL

    if "audio.model" not in dict(overrides):
        overrides = [*overrides, ("audio.model", DEFAULT_MODEL)]
    return load_config(None, env={}, overrides=[(k, v, "--set") for k, v in overrides])


def main(argv: list[str] | None = None) -> int:
    from benchmarks.e2e_voice import stream_arguments

    parser = stream_arguments(__doc__.splitlines()[0])
    parser.add_argument("--conditions", default="clean,babble_10_dB", help="comma-separated stream names")
    parser.add_argument("--alphas", default="1,0.5,0.35,0.25",
                        help="audio.utterance_alpha values side by side (1: the latest window alone)")
    parser.add_argument("--pairings", type=int, default=10, help="random class-matched pairings averaged")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    overrides = parse_settings(parser, args.set)
    conditions = args.conditions.split(",")
    known = [slug(name) for name, _, _ in CONDITIONS]
    if unknown := [c for c in conditions if c not in known]:
        parser.error(f"unknown stream {', '.join(unknown)}; the streams are {', '.join(known)}")
    try:
        alphas = [float(a) for a in args.alphas.split(",")]
        config = held_out_config(overrides)
    except (ValueError, ConfigError) as exc:
        parser.error(str(exc))
    spec = VoiceClipSpec(seed=args.seed, actors=args.actors, babble_actors=args.babble_actors)
    figures = run_utterances(args.shared, args.out, spec, conditions, alphas, args.pairings, config)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
