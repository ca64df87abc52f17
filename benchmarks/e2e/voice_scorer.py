"""Score the daemon's ear on a labelled audio stream: what a subscriber is told, clip by clip.

The daemon runs as it ships (`python -m device`, one process per stream): the stream as its audio
file (played at real time, as a microphone would deliver it), a still face video paced with it (the
voice travels inside face events), events to a JSON-lines file, no broker, a heartbeat on every
frame so that every voice reading reaches the file. Nothing of the daemon is changed or watched
from inside: the readings are read back from the events alone.

Readings from events: every event carries the latest reading and its age, so the reading's wall
time is the event's time minus its age; events of one reading share it. The listener classifies
the window ending at 2 s, 2.5 s, ... of audio, in order, so consecutive readings are one hop apart
on the wall clock, and a reading's window index k is its wall time since the first reading, in
hops, plus an offset taken from the frames' media time (the video is paced to the audio). The
distance of every reading from its hop (`alignment_max`) and readings that disagree with another
of the same k (`conflicts`) are reported; both should be small / zero.

Per clip, from the daemon's own windows: a window belongs to the clip it overlaps most (windows
over silence only belong to none); the clip's answer is the device's `clip_score` over its voiced
windows (probabilities weighted by their share of active frames), the rule `make evaluate` uses on
a clip; a clip with no voiced window gets no answer and counts as wrong. Two other aggregations
(plain mean, majority of window votes) are reported beside it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np

from device.audio.log_mel import SAMPLE_RATE, WINDOW_SAMPLES
from device.audio.voice_windows import DEFAULT_HOP_S, clip_score
from device.config import AudioSection
from device.runtime.voice_labels import VOICE_LABELS

HEARTBEAT_S = 0.05  # below the video's frame interval: an event on every frame
MATCH_HOPS = 40  # how far (in hops) a reading may sit from its wall-clock estimate
MERGE_S = 0.35  # events of one reading: their wall times (event time - age) differ by frame processing time


def daemon_command(wav: Path, video: Path, events: Path,
                   overrides: Sequence[tuple[str, str]] = ()) -> list[str]:
    """`python -m device` on the stream as shipped, plus the settings a measurement needs."""
    command = [sys.executable, "-m", "device", "--source", str(video), "--audio-file", str(wav),
               "--events-out", str(events), "--no-mqtt", "--device-id", "e2e-voice", "--log-level", "warning",
               "--set", f"events.heartbeat_s={HEARTBEAT_S}", "--set", "device.num_threads=1",
               "--set", "audio.required=true", "--set", "mqtt.stats_every_s=3600"]
    for key, value in overrides:
        command += ["--set", f"{key}={value}"]
    return command


def start_daemon(wav: Path, video: Path, events: Path, log: Path,
                 overrides: Sequence[tuple[str, str]] = ()) -> subprocess.Popen:
    events.unlink(missing_ok=True)
    with log.open("w") as fh:
        return subprocess.Popen(daemon_command(wav, video, events, overrides), stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def read_events(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _wall(event: dict) -> float:
    return datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()


def _same(a: dict, b: dict) -> bool:
    """Two readings in the events' form agree: the VAD verdict, and the probabilities to their rounding."""
    if a["vad"] != b["vad"] or ("probabilities" in a) != ("probabilities" in b):
        return False
    if "probabilities" not in a:
        return True
    return max(abs(a["probabilities"][k] - b["probabilities"][k]) for k in a["probabilities"]) <= 2e-4


def readings_from_events(events: list[dict], hop_s: float = DEFAULT_HOP_S,
                         reference: dict[int, dict] | None = None) -> tuple[dict[int, dict], dict]:
    """{window index k: the event's `voice` object without its age} and alignment figures.

    Without `reference`, k comes from the reading's wall time (hops since the first reading) plus
    the media-time offset. That holds on an idle machine; under load the listener thread runs late
    and catches up in bursts, so wall times bunch up. With `reference` (the device code run offline
    over the same windows: `replay_readings`), each reading is placed at the window within
    MATCH_HOPS of its wall-clock estimate whose offline reading it equals (nearest first); a
    reading that equals none is `unmatched` (the daemon computed something the device code does
    not) and stays at its estimate."""
    window_s = WINDOW_SAMPLES / SAMPLE_RATE
    heard = sorted(((_wall(e) - e["voice"]["age_s"], e["frame"]["media_time_s"] - e["voice"]["age_s"],
                     {key: value for key, value in e["voice"].items() if key != "age_s"})
                    for e in events if "voice" in e), key=lambda h: h[0])
    if not heard:
        return {}, {"events_with_voice": 0, "readings": 0, "conflicts": 0, "unmatched": 0,
                    "alignment_max": None, "alignment_median": None}
    distinct = [heard[0]]
    for item in heard[1:]:  # the events of one reading: same content, classified at about one time
        if item[2] != distinct[-1][2] or item[0] - distinct[-1][0] > MERGE_S:
            distinct.append(item)
    first = distinct[0][0]
    hops = np.array([(wall - first) / hop_s for wall, _, _ in distinct])
    media = np.array([(m - window_s) / hop_s for _, m, _ in distinct])
    estimate = hops + float(np.median(media - hops))
    readings: dict[int, dict] = {}
    conflicts = unmatched = duplicates = 0
    distances = []
    for guess, (_, _, reading) in zip(estimate, distinct, strict=True):
        k = round(float(guess))
        if reference is not None:
            near = sorted(range(k - MATCH_HOPS, k + MATCH_HOPS + 1), key=lambda j: abs(j - guess))
            equal = [j for j in near if j in reference and _same(reference[j], reading)]
            free = [j for j in equal if j not in readings]
            if free:
                k = free[0]
            elif equal:  # a reading already placed, seen again on a late frame
                duplicates += 1
                continue
            else:
                unmatched += 1
        distances.append(abs(k - guess))
        if k in readings and readings[k] != reading:
            conflicts += 1
        readings.setdefault(k, reading)
    return readings, {"events_with_voice": len(heard), "readings": len(readings), "conflicts": conflicts,
                      "unmatched": unmatched, "duplicates": duplicates,
                      "alignment_max": float(np.max(distances)),
                      "alignment_median": float(np.median(distances))}


def window_owner(k: int, clips: list[dict], hop_s: float = DEFAULT_HOP_S) -> int | None:
    """The clip (index into `clips`) a window overlaps most; None when it holds none."""
    start = round(k * hop_s * SAMPLE_RATE)
    end = start + WINDOW_SAMPLES
    best, best_overlap = None, 0
    for i, clip in enumerate(clips):
        overlap = min(end, clip["end"]) - max(start, clip["start"])
        if overlap > best_overlap:
            best, best_overlap = i, overlap
    return best


def reading_probabilities(reading: dict) -> np.ndarray | None:
    if "probabilities" not in reading:
        return None
    return np.array([reading["probabilities"][label] for label in VOICE_LABELS], dtype=np.float64)


def clip_answers(readings: dict[int, dict], clips: list[dict], windows: int,
                 hop_s: float = DEFAULT_HOP_S) -> list[dict]:
    """Per clip: its windows, voiced windows and the answer under each aggregation (None: no answer)."""
    owned: dict[int, list[int]] = {}
    for k in range(windows):
        owner = window_owner(k, clips, hop_s)
        if owner is not None:
            owned.setdefault(owner, []).append(k)
    rows = []
    for i, clip in enumerate(clips):
        ks = owned.get(i, [])
        voiced = [(readings[k]["vad"]["active_fraction"], reading_probabilities(readings[k]))
                  for k in ks if k in readings and reading_probabilities(readings[k]) is not None]
        row = {"clip": clip["index"], "name": clip["name"], "label": clip["label"], "windows": len(ks),
               "heard": sum(1 for k in ks if k in readings), "voiced": len(voiced)}
        if voiced:
            weights = np.array([w for w, _ in voiced])
            probs = np.stack([p for _, p in voiced])
            score = clip_score(probs, weights if weights.sum() > 0 else np.ones(len(voiced)))
            row["vad_weighted"] = int(np.argmax(score))
            row["mean"] = int(np.argmax(probs.mean(axis=0)))
            row["vote"] = Counter(np.argmax(probs, axis=1).tolist()).most_common(1)[0][0]
        else:
            row["vad_weighted"] = row["mean"] = row["vote"] = None
        rows.append(row)
    return rows


def accuracy(rows: list[dict], key: str) -> float:
    return float(np.mean([r[key] == r["label"] for r in rows])) if rows else 0.0


def score_stream(events: list[dict], timeline: dict, hop_s: float = DEFAULT_HOP_S,
                 reference: dict[int, dict] | None = None) -> dict:
    """The daemon's per-clip accuracy on one stream, read from its events (placed by `reference`)."""
    readings, alignment = readings_from_events(events, hop_s, reference)
    hop_samples = round(hop_s * SAMPLE_RATE)
    windows = (timeline["samples"] - WINDOW_SAMPLES) // hop_samples + 1
    rows = clip_answers(readings, timeline["clips"], windows, hop_s)
    return {"rows": rows, "accuracy": accuracy(rows, "vad_weighted"), "accuracy_mean": accuracy(rows, "mean"),
            "accuracy_vote": accuracy(rows, "vote"),
            "no_answer": sum(1 for r in rows if r["vad_weighted"] is None),
            "windows_expected": windows, "missing_readings": windows - len(readings), **alignment}


def replay_readings(samples: np.ndarray, classifier, section: AudioSection) -> dict[int, dict]:
    """The listener's windows computed offline with the device's own VAD (`gate_window`, over the same
    background span) and classifier, in the events' form: to check the daemon against, and to try
    settings without a real-time run."""
    from device.audio.voice_listener import BACKGROUND_SAMPLES, gate_window

    hop_samples = round(section.hop_s * SAMPLE_RATE)
    readings = {}
    for k, start in enumerate(range(0, len(samples) - WINDOW_SAMPLES + 1, hop_samples)):
        end = start + WINDOW_SAMPLES
        vad = gate_window(section, samples[max(0, end - BACKGROUND_SAMPLES):end])
        reading: dict = {"vad": {"voiced": vad.voiced, "active_fraction": round(vad.active_fraction, 3),
                                 "level_db": round(vad.level_db, 1)}}
        if vad.voiced:
            probs = classifier.classify_window(samples[start:end])
            reading["probabilities"] = {label: round(float(p), 4) for label, p in zip(VOICE_LABELS, probs,
                                                                                       strict=True)}
        readings[k] = reading
    return readings


def compare_to_replay(daemon: dict[int, dict], replay: dict[int, dict]) -> dict:
    """How many of the daemon's readings the offline replay reproduces (VAD verdict and winner)."""
    shared = sorted(set(daemon) & set(replay))
    same_vad = sum(1 for k in shared if daemon[k]["vad"]["voiced"] == replay[k]["vad"]["voiced"])
    voiced = [k for k in shared if "probabilities" in daemon[k] and "probabilities" in replay[k]]
    same_class = sum(1 for k in voiced if np.argmax(reading_probabilities(daemon[k]))
                     == np.argmax(reading_probabilities(replay[k])))
    max_diff = max((float(np.max(np.abs(reading_probabilities(daemon[k]) - reading_probabilities(replay[k]))))
                    for k in voiced), default=0.0)
    return {"compared": len(shared), "same_vad": same_vad, "voiced_compared": len(voiced),
            "same_class": same_class, "max_probability_diff": max_diff}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def print_table(results: list[dict], model_clean: float) -> None:
    """One row per stream: daemon accuracy, the model on the clean clips, the drop, diagnostics."""
    print(f"{'stream':<17}{'clips':>6}{'daemon':>9}{'model clean':>13}{'drop':>7}{'model cut':>11}"
          f"{'no answer':>11}{'mean':>8}{'vote':>8}{'missing':>9}{'align':>7}")
    for r in results:
        cut = "-" if r.get("model_cut") is None else _pct(r["model_cut"])
        align = "-" if r["alignment_max"] is None else f"{r['alignment_max']:.2f}"
        print(f"{r['condition']:<17}{len(r['rows']):>6}{_pct(r['accuracy']):>9}{_pct(model_clean):>13}"
              f"{100 * (model_clean - r['accuracy']):>+7.1f}{cut:>11}{r['no_answer']:>11}"
              f"{_pct(r['accuracy_mean']):>8}{_pct(r['accuracy_vote']):>8}{r['missing_readings']:>9}{align:>7}")
