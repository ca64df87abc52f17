"""`python -m benchmarks.e2e.fusion_stream` (`make e2e-fusion`): the speaker's fused emotion over utterances.

The daemon fuses every new voice reading (a 2 s window, every 0.5 s hop) with the speaker's face
and reports the fused emotion with the face's hysteresis (`device/fusion/speaker_fusion.py`). What
a subscriber is told depends on how readings are combined over an utterance, so this scores the
device's own `SpeakerFusion` over the windows of `make e2e-voice`'s stream (RAVDESS actors, silence
between clips; the device's VAD and classifier run offline over the same windows, identical to the
daemon's readings, `make e2e-voice` checks that), each clip paired with a FER2013 PublicTest face
of the same class scored by the face model (flip TTA as configured): class-matched pseudo-pairs as in
`training.fusion_evaluation`, since no recording here has one person's face and voice together, so
face and voice err independently, which one person's face and voice do not.

Per `fusion.alpha` (the weight of each new reading in the speaker's average; 1 keeps only the
latest) it reports how often the fused emotion is right over all voiced readings and at the clip's
last one (the verdict an utterance leaves), and its changes per voiced minute: within one clip the
face and the voice's true emotion stay the same, so every change there is a flip-flop. Face alone and
voice alone are printed beside it. One JSON line last, for the configured alpha.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from benchmarks.e2e.__main__ import parse_settings
from benchmarks.e2e.voice_clip import CONDITIONS, VoiceClipSpec, generate, slug
from benchmarks.e2e.voice_scorer import reading_probabilities, window_owner
from device.audio.log_mel import SAMPLE_RATE, WINDOW_SAMPLES
from device.audio.vad import VadDecision
from device.audio.voice_listener import VoiceReading
from device.fusion.speaker_fusion import SpeakerFusion
from device.runtime.voice_labels import VOICE_TO_FACE_INDEX, voice_to_face_probabilities

VOICED = VadDecision(voiced=True, active_fraction=1.0, level_db=0.0, floor_db=0.0)  # fusion reads no more


@dataclass
class Tally:
    """Counts over one stream and pairing; `merge` adds another's."""

    readings: int = 0
    fused_right: int = 0
    voice_right: int = 0
    face_right: int = 0
    changes: int = 0
    clips: int = 0
    fused_last_right: int = 0
    voice_last_right: int = 0

    def merge(self, other: Tally) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def figures(self, hop_s: float) -> dict:
        n, clips = max(self.readings, 1), max(self.clips, 1)
        return {"fused_per_reading": self.fused_right / n, "fused_clip_end": self.fused_last_right / clips,
                "voice_per_reading": self.voice_right / n, "voice_clip_end": self.voice_last_right / clips,
                "face": self.face_right / n, "changes_per_voiced_min": 60.0 * self.changes / (n * hop_s),
                "readings": self.readings, "clips": self.clips}


def voiced_windows(readings: dict[int, dict], clips: list[dict], windows: int,
                   hop_s: float) -> list[tuple[int, int | None, np.ndarray | None]]:
    """(window, owning clip or None, voice probabilities over the face classes or None) in stream order."""
    out = []
    for k in range(windows):
        probs = reading_probabilities(readings[k]) if k in readings else None
        face_probs = None if probs is None else voice_to_face_probabilities(probs)
        out.append((k, window_owner(k, clips, hop_s), face_probs))
    return out


def fuse_stream(windows: list[tuple[int, int | None, np.ndarray | None]], labels: list[int],
                faces: np.ndarray, fusion: SpeakerFusion, hop_s: float) -> Tally:
    """Run the device's speaker fusion over a stream as the pipeline does: every unvoiced window (or one
    over no clip) forgets the speaker; a clip's pseudo-pair face is its speaker (track id = clip).
    `labels[i]` is clip i's face class and `faces[i]` the face model's probabilities for its face."""
    tally = Tally()
    last: dict[int, tuple[int, int]] = {}  # clip -> (fused, voice) at its last voiced window
    fusion.clear()
    for k, owner, voice in windows:
        if voice is None or owner is None:
            fusion.clear()
            continue
        reading = VoiceReading(k * hop_s, VOICED, face_probabilities=voice)
        y = labels[owner]
        tally.changes += fusion.update(owner, faces[owner], reading) is not None
        tally.readings += 1
        tally.fused_right += fusion.emotion.dominant == y
        tally.voice_right += int(np.argmax(voice)) == y
        tally.face_right += int(np.argmax(faces[owner])) == y
        last[owner] = (fusion.emotion.dominant, int(np.argmax(voice)))
    for owner, (fused, voice_best) in last.items():
        tally.clips += 1
        tally.fused_last_right += fused == labels[owner]
        tally.voice_last_right += voice_best == labels[owner]
    return tally


def paired_faces(face_probs: np.ndarray, face_labels: np.ndarray, clip_labels: list[int],
                 rng: np.random.Generator) -> np.ndarray:
    """For each clip, the probabilities of a random face of its class (class-matched pseudo-pair)."""
    rows = [rng.choice(np.flatnonzero(face_labels == y)) for y in clip_labels]
    return face_probs[rows]


def main(argv: list[str] | None = None) -> int:
    from benchmarks.e2e.run import FER_RELATIVE, publictest_faces
    from benchmarks.e2e_voice import DEFAULT_MODEL, model_tag, stream_arguments, stream_readings
    from device.audio.audio_sources import read_audio_file, to_int16
    from device.audio.voice_classifier import VoiceClassifier
    from device.config import load_config
    from device.errors import ConfigError
    from device.fusion.product_rule import Fusion
    from device.vision.face_classifier import FaceClassifier

    parser = stream_arguments(__doc__.splitlines()[0])
    parser.add_argument("--conditions", default="clean,babble_10_dB", help="comma-separated stream names")
    parser.add_argument("--alphas", default="1,0.5,0.35,0.25", help="fusion.alpha values side by side")
    parser.add_argument("--pairings", type=int, default=10, help="random class-matched pairings averaged")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    overrides = parse_settings(parser, args.set)
    if "audio.model" not in dict(overrides):
        overrides = [*overrides, ("audio.model", DEFAULT_MODEL)]
    conditions = args.conditions.split(",")
    known = [slug(name) for name, _, _ in CONDITIONS]
    if unknown := [c for c in conditions if c not in known]:
        parser.error(f"unknown stream {', '.join(unknown)}; the streams are {', '.join(known)}")
    try:
        alphas = [float(a) for a in args.alphas.split(",")]
        config = load_config(None, env={}, overrides=[(k, v, "--set") for k, v in overrides])
    except (ValueError, ConfigError) as exc:
        parser.error(str(exc))
    fer, ravdess = args.shared / FER_RELATIVE, args.shared / "ravdess"
    if not fer.is_file() or not ravdess.is_dir():
        print(f"e2e-fusion skipped: {fer} and {ravdess} are needed (faces and voices to pair)")
        print(json.dumps({}))
        return 0
    spec = VoiceClipSpec(seed=args.seed, actors=args.actors, babble_actors=args.babble_actors)
    paths, _, timeline_path = generate(ravdess, spec, args.out)
    timeline = json.loads(timeline_path.read_text())
    clips, hop_s = timeline["clips"], config.audio.hop_s
    clip_labels = [int(VOICE_TO_FACE_INDEX[c["label"]]) for c in clips]
    faces, face_labels, usable = publictest_faces(fer)
    classifier = FaceClassifier(config.face.model, num_threads=1, flip_tta=config.face.flip_tta)
    face_probs = np.stack([classifier.classify(faces[i]) for i in usable])
    face_labels = face_labels[usable]
    voice = VoiceClassifier(Path(config.audio.model), num_threads=1)
    total_windows = (timeline["samples"] - WINDOW_SAMPLES) // round(hop_s * SAMPLE_RATE) + 1
    fuser = Fusion(config.fusion)
    results = {}
    names = {slug(name): name for name, _, _ in CONDITIONS}
    for condition in conditions:
        samples = to_int16(read_audio_file(paths[names[condition]]))
        readings = stream_readings(args.out, condition, samples, voice, config.audio,
                                   model_tag(Path(config.audio.model)))
        windows = voiced_windows(readings, clips, total_windows, hop_s)
        for alpha in alphas:
            tally = Tally()
            for seed in range(args.pairings):
                paired = paired_faces(face_probs, face_labels, clip_labels, np.random.default_rng(seed))
                tally.merge(fuse_stream(windows, clip_labels, paired,
                                        SpeakerFusion(fuser, config.smoothing.margin, alpha), hop_s))
            results[(condition, alpha)] = tally.figures(hop_s)
    print(f"speaker fusion ({config.fusion.method}, margin {config.smoothing.margin:g}) over {len(clips)} "
          f"clips of actors {spec.actors}, {args.pairings} class-matched pairings with PublicTest faces; "
          f"voice {config.audio.model}, face {config.face.model}")
    print(f"{'stream':16s}{'alpha':>7s}{'fused, reading':>16s}{'fused, clip end':>17s}{'changes/min':>13s}"
          f"{'voice, reading':>16s}{'voice, clip end':>17s}{'face':>8s}")
    for (condition, alpha), r in results.items():
        mark = " (config)" if alpha == config.fusion.alpha else ""
        print(f"{condition:16s}{alpha:7g}{100 * r['fused_per_reading']:15.1f}%"
              f"{100 * r['fused_clip_end']:16.1f}%{r['changes_per_voiced_min']:13.1f}"
              f"{100 * r['voice_per_reading']:15.1f}%"
              f"{100 * r['voice_clip_end']:16.1f}%{100 * r['face']:7.1f}%{mark}")
    chosen = {c: r for (c, a), r in results.items() if a == config.fusion.alpha}
    print(json.dumps({f"e2e_fusion_{c.lower()}_{k}": round(v, 4) for c, r in chosen.items()
                      for k, v in r.items() if k not in ("readings", "clips")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
