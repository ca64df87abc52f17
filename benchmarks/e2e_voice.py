"""`python -m benchmarks.e2e_voice` (`make e2e-voice`): the daemon's ear end to end on RAVDESS.

Builds (once; reused while the spec is unchanged) a seeded stream of the clips of actors 17-20 with
silence between them, plus the same stream with babble (other actors' speech, 01-16) and with
broadband noise at 20 and 10 dB SNR (`benchmarks/e2e/voice_clip.py`); runs the daemon as it ships
on each (`python -m device --audio-file ... --events-out ...`, in parallel, each at real time:
about 20 minutes for all 240 clips) and scores every clip from the daemon's own windows read back
from its events (`benchmarks/e2e/voice_scorer.py`), against `training.evaluate` with the same
model on the same clean clips. Prints one table and, last, one JSON line.

`--replay` skips the real-time runs and scores the device's own code run offline over the same
windows (VAD, classifier; identical readings, checked on every real run): for trying settings
(`--set audio.vad_room_margin_db=15`) in seconds. The real run is the measurement.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from benchmarks.e2e.__main__ import parse_settings
from benchmarks.e2e.voice_clip import CONDITIONS, VoiceClipSpec, generate, slug
from benchmarks.e2e.voice_scorer import (
    clip_answers,
    compare_to_replay,
    print_table,
    read_events,
    readings_from_events,
    replay_readings,
    score_stream,
    start_daemon,
)
from device.audio.log_mel import SAMPLE_RATE, WINDOW_SAMPLES
from device.config import AudioSection
from device.config_loading import field_hints, parse_text, unknown_key_error
from device.errors import ConfigError

# The shipped voice model was trained on every actor, 17-20 included, once cross-validation had chosen
# its recipe; the stream's speakers are heard by the same recipe trained without them (cross-validation
# fold 5), so the figures say what a new speaker gets. `--set audio.model=...` measures another model.
DEFAULT_MODEL = "models/heldout/voice_cnn_actors01-16_int8.tflite"


def model_on_clean_clips(model: Path, ravdess: Path, timeline: dict) -> float:
    """`training.evaluate` (what `make evaluate` runs) on the test actors, restricted to the
    stream's clips."""
    from training.evaluate import evaluate
    from training.ravdess_data import find_clips

    actors = timeline["spec"]["actors"]
    y_true, probs, _ = evaluate(model, str(ravdess), actors=actors, kind="voice")
    right = {c.path.name: bool(np.argmax(p) == y) for c, p, y in
             zip(find_clips(str(ravdess), actors), probs, y_true, strict=True)}
    return float(np.mean([right[c["name"]] for c in timeline["clips"]]))


def model_on_cut_clips(classifier, samples: np.ndarray, timeline: dict) -> float:
    """The model on each clip cut out of this stream (noise included), scored as `make evaluate`
    scores a clip: what the noise costs the model before the daemon's windows come in."""
    from device.audio.voice_windows import clip_score, clip_windows

    right = []
    for clip in timeline["clips"]:
        windows = clip_windows(samples[clip["start"]:clip["end"]])
        probs = np.stack([classifier.classify_features(f) for f in windows.features])
        right.append(int(np.argmax(clip_score(probs, windows.weights))) == clip["label"])
    return float(np.mean(right))


def cached(path: Path, compute, *args):
    """A JSON result kept beside the streams (named by stream, settings and model), so scoring a run
    again or another run of the same streams does not recompute the offline windows."""
    if path.exists():
        return json.loads(path.read_text())
    value = compute(*args)
    path.write_text(json.dumps(value))
    return value


def stream_readings(out: Path, condition: str, samples: np.ndarray, classifier, audio: AudioSection,
                    model_tag: str) -> dict[int, dict]:
    """The device's windows over one stream computed offline (`replay_readings`), cached beside the
    streams under the VAD settings, hop and model they depend on."""
    settings_tag = (f"{audio.vad_threshold_db:g}_{audio.vad_quiet_threshold_db:g}_"
                    f"{audio.vad_room_margin_db:g}_{audio.vad_margin_db:g}_{audio.hop_s:g}_{model_tag}")
    replay = cached(out / f"replay_{slug(condition)}_{settings_tag}.json", replay_readings,
                    samples, classifier, audio)
    return {int(k): v for k, v in replay.items()}


def model_tag(model: Path) -> str:
    """The model's stem and content hash: caches of its results follow the file, not its name."""
    return f"{model.stem}_{hashlib.sha256(model.read_bytes()).hexdigest()[:10]}"


def audio_section(settings: dict[str, str]) -> AudioSection:
    """The [audio] section the daemon holds under these `--set` overrides: what the replay runs on."""
    hints = field_hints(AudioSection)
    values = {}
    for dotted, text in settings.items():
        section, _, key = dotted.partition(".")
        if section != "audio":
            continue
        if key not in hints:
            raise unknown_key_error("--set audio", key, hints)
        values[key] = parse_text(hints[key], text, f"--set {dotted}")
    return dataclasses.replace(AudioSection(), **values)


def stream_arguments(description: str) -> argparse.ArgumentParser:
    """The options that name a stream (where the data and streams are, seed, speakers): every tool
    that reads `make e2e-voice`'s streams takes the same."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--shared", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--out", type=Path, default=Path("runs/e2e_voice"), help="streams, events, results")
    parser.add_argument("--seed", type=int, default=VoiceClipSpec.seed)
    parser.add_argument("--actors", default=VoiceClipSpec.actors, help="the stream's speakers")
    parser.add_argument("--babble-actors", default=VoiceClipSpec.babble_actors,
                        help="the babble's speakers (never the stream's)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = stream_arguments(__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=0, help="only the first N clips of the stream (0: all)")
    parser.add_argument("--conditions", default="all",
                        help="comma-separated stream names (clean, babble_20_dB, ...) or all")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a daemon setting for this run (repeatable)")
    parser.add_argument("--replay", action="store_true",
                        help="no real-time daemon: the device's code offline over the same windows")
    parser.add_argument("--rescore", action="store_true",
                        help="score the events of the last real-time run in --out again (no new run)")
    args = parser.parse_args(argv)
    overrides = parse_settings(parser, args.set)
    settings = dict(overrides)
    if "audio.model" not in settings:
        overrides = [*overrides, ("audio.model", DEFAULT_MODEL)]
    model = Path(settings.get("audio.model", DEFAULT_MODEL))
    try:
        audio = audio_section(settings)
    except ConfigError as exc:
        parser.error(str(exc))
    hop_s = audio.hop_s
    ravdess = args.shared / "ravdess"
    if not ravdess.is_dir():
        print(f"e2e-voice skipped: {ravdess} not found (RAVDESS actors 01-20 are needed for the streams)")
        print(json.dumps({}))
        return 0
    asked = args.conditions.split(",")
    chosen = [n for n, _, _ in CONDITIONS if args.conditions == "all" or slug(n) in asked]
    spec = VoiceClipSpec(seed=args.seed, clips=args.clips, actors=args.actors,
                         babble_actors=args.babble_actors)
    paths, video, timeline_path = generate(ravdess, spec, args.out)
    timeline = json.loads(timeline_path.read_text())
    from device.audio.audio_sources import read_audio_file, to_int16
    from device.audio.voice_classifier import VoiceClassifier

    classifier = VoiceClassifier(model, num_threads=1)
    tag_of_model = model_tag(model)
    model_clean = model_on_clean_clips(model, ravdess, timeline)
    tag = "replay" if args.replay else "daemon"
    runs = {}
    if not args.replay and not args.rescore:
        started = time.monotonic()
        for name in chosen:
            runs[name] = start_daemon(paths[name], video, args.out / f"events_{slug(name)}.jsonl",
                                      args.out / f"daemon_{slug(name)}.log", overrides)
        print(f"{len(runs)} daemons playing {timeline['seconds'] / 60:.1f} min of audio each at real time",
              flush=True)
        failed = {name: run.wait() for name, run in runs.items()}
        failed = {name: code for name, code in failed.items() if code}
        if failed:
            print(f"daemon failed: {failed}; see {args.out}/daemon_*.log", file=sys.stderr)
            return 1
        print(f"daemons done in {(time.monotonic() - started) / 60:.1f} min", flush=True)
    results = []
    for name in chosen:
        samples = to_int16(read_audio_file(paths[name]))
        replay = stream_readings(args.out, name, samples, classifier, audio, tag_of_model)
        if args.replay:
            windows = (timeline["samples"] - WINDOW_SAMPLES) // round(hop_s * SAMPLE_RATE) + 1
            rows = clip_answers(replay, timeline["clips"], windows, hop_s)
            from benchmarks.e2e.voice_scorer import accuracy

            result = {"rows": rows, "accuracy": accuracy(rows, "vad_weighted"),
                      "accuracy_mean": accuracy(rows, "mean"), "accuracy_vote": accuracy(rows, "vote"),
                      "no_answer": sum(1 for r in rows if r["vad_weighted"] is None),
                      "missing_readings": 0, "alignment_max": None}
        else:
            events = read_events(args.out / f"events_{slug(name)}.jsonl")
            result = score_stream(events, timeline, hop_s, replay)
            result["replay_check"] = compare_to_replay(readings_from_events(events, hop_s, replay)[0], replay)
        result["condition"] = name
        cut_path = args.out / f"model_cut_{slug(name)}_{tag_of_model}.json"
        result["model_cut"] = cached(cut_path, model_on_cut_clips, classifier,
                                     samples.astype(np.float32) / 32768.0, timeline)
        results.append(result)
    print(f"{tag}: {len(timeline['clips'])} clips of actors {spec.actors} "
          f"({timeline['seconds'] / 60:.1f} min, "
          f"seed {spec.seed}); babble from actors {spec.babble_actors}; "
          f"{' '.join(f'{k}={v}' for k, v in overrides) or 'daemon defaults'}")
    print_table(results, model_clean)
    for r in results:
        if "replay_check" in r:
            c = r["replay_check"]
            print(f"{r['condition']}: daemon vs device code offline: "
                  f"VAD same on {c['same_vad']}/{c['compared']} "
                  f"windows, class same on {c['same_class']}/{c['voiced_compared']} voiced, max probability "
                  f"difference {c['max_probability_diff']:.4f}; readings equal to no offline window "
                  f"{r['unmatched']}, placed {r['alignment_median']:.2f} hops (median) from their clock time")
    (args.out / f"last_result_{tag}.json").write_text(json.dumps(
        {"model_clean": model_clean, "overrides": overrides, "results": results}, indent=1))
    figures = {"e2e_voice_mode": tag, "e2e_voice_clips": len(timeline["clips"]),
               "e2e_voice_model_clean": round(model_clean, 4)}
    for r in results:
        figures[f"e2e_voice_{slug(r['condition']).lower()}"] = round(r["accuracy"], 4)
        figures[f"e2e_voice_{slug(r['condition']).lower()}_drop"] = round(model_clean - r["accuracy"], 4)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
