"""Score the daemon on a labelled clip: what a subscriber is told about each face, against the truth.

The daemon runs as it ships: the application object (`device.app.App`) built from the default
configuration plus the overrides given, the clip as its source, events to a JSON-lines file
(`events.out`), no broker. Besides the events, the scorer notes after every frame which announced
tracks the daemon holds and where (what its `state` message would say at that frame); it changes
nothing in the run.

Per face segment and face:
- detected: an announced track's box lies on the face (its centre inside the true box, its width
  0.35-1.5x the true box's) on at least one frame of the segment;
- the matching track: of those, the one that holds the face latest in the segment (ties: most
  frames); its emotion is that of its latest event at or before the segment's last frame, right
  when it is the face's label;
- model: the face model (flip TTA as configured) on the face's clean 48x48 image, the ceiling;
- first event: from the face's first frame to the first event of a track on it;
- overhang: from the first frame without the face to the matching track's `end` event (0 when
  the track ended before its face left);
- flicker: `change` events of the face's tracks within the segment, per track-minute;
- inherited: the matching track existed before the face appeared (an old id on a new face).
Face-free gaps: tracks that appear there and never lie on a face, per minute of gap.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from device.app import App
from device.config import load_config
from device.vision.face_classifier import FaceClassifier

MIN_WIDTH_RATIO, MAX_WIDTH_RATIO = 0.35, 1.5


def on_face(box: Sequence[int], truth: Sequence[int]) -> bool:
    """A reported box lies on a true face: centre inside it and a comparable size."""
    x, y, w, h = box
    tx, ty, tw, th = truth
    cx, cy = x + w / 2, y + h / 2
    return tx <= cx <= tx + tw and ty <= cy <= ty + th and MIN_WIDTH_RATIO <= w / tw <= MAX_WIDTH_RATIO


def run_daemon(clip: Path, events_path: Path, overrides: Sequence[tuple[str, str]] = ()) -> tuple[dict, list]:
    """Run the daemon over the clip; its run summary and, per frame, the announced tracks' boxes."""
    settings = [("source.uri", str(clip), "--source"), ("events.out", str(events_path), "--events-out"),
                ("mqtt.url", "", "--no-mqtt"), ("device.id", "e2e", "--set"),
                ("device.num_threads", "1", "--set"), ("mqtt.stats_every_s", "3600", "--set")]
    settings += [(key, value, "--set") for key, value in overrides]
    app = App.build(load_config(None, env={}, overrides=settings))
    pipeline = app.pipeline
    observed: list[tuple[int, list[tuple[int, tuple[int, ...]]]]] = []
    process = pipeline.process

    def process_and_observe(frame) -> None:
        process(frame)
        reports = pipeline.reports
        observed.append((frame.index, [(t.track_id, tuple(t.box)) for t in pipeline.tracker.tracks
                                       if t.track_id in reports and reports[t.track_id].announced]))

    pipeline.process = process_and_observe
    app.start()
    try:
        result = app.run()
    finally:
        app.close()
    return result.summary, observed


def model_probabilities(config_overrides: Sequence[tuple[str, str]], faces: np.ndarray) -> np.ndarray:
    """The face model as the daemon loads it (same file, same flip TTA) on clean 48x48 faces."""
    config = load_config(None, env={}, overrides=[("mqtt.url", "", "--no-mqtt"),
                                                   *[(k, v, "--set") for k, v in config_overrides]])
    classifier = FaceClassifier.for_section(config.face)
    return np.stack([classifier.classify(face) for face in faces])


def _stat(values: list[float], how: str) -> float | None:
    if not values:
        return None
    if how == "mean":
        return float(np.mean(values))
    if how == "max":
        return float(np.max(values))
    return float(np.percentile(values, 95))


def standard_error(differences: list[float]) -> float | None:
    """Standard error of a mean of per-face differences. The gap is one draw of faces: on `make
    e2e`'s 500 or so it moves by about 1.4 points from clip to clip, so a 2-point target is read
    with this beside it (docs/device.md, "A second clip")."""
    if len(differences) < 2:
        return None
    return float(np.std(differences, ddof=1) / np.sqrt(len(differences)))


def score(timeline: dict, events: list[dict], observed: list, model_labels: dict[int, str]) -> dict:
    """Per-face rows and the figures (see the module docstring). `model_labels`: row -> model's class."""
    fps = timeline["fps"]
    truth_at: dict[int, list[tuple[tuple[int, int], list[int]]]] = defaultdict(list)
    segment_of_frame = np.zeros(timeline["frames"], np.int64)
    for segment in timeline["segments"]:
        segment_of_frame[segment["start_frame"]:segment["end_frame"]] = segment["index"]
        for face in segment["faces"]:
            for k, box in enumerate(face["boxes"]):
                truth_at[segment["start_frame"] + k].append(((segment["index"], face["face"]), box))
    # where each track lay on each face, and its first and last frames
    on: dict[tuple[int, int], dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    first_seen: dict[int, int] = {}
    ever_on_face: set[int] = set()
    for index, tracks in observed:
        for track_id, box in tracks:
            first_seen.setdefault(track_id, index)
            for key, truth in truth_at.get(index, ()):
                if on_face(box, truth):
                    on[key][track_id].append(index)
                    ever_on_face.add(track_id)
    by_track: dict[int, list[dict]] = defaultdict(list)
    for event in events:
        by_track[event["track_id"]].append(event)
    rows = []
    for segment in timeline["segments"]:
        start, end = segment["start_frame"], segment["end_frame"]
        for face in segment["faces"]:
            key = (segment["index"], face["face"])
            tracks = on.get(key, {})
            row = {"segment": segment["index"], "kind": segment["kind"], "face": face["face"],
                   "row": face["row"], "size": face["boxes"][0][2], "background": segment["background"],
                   "label": face["emotion"], "model": model_labels[face["row"]], "detected": bool(tracks)}
            row["model_right"] = row["model"] == row["label"]
            if tracks:
                track_id = max(tracks, key=lambda t: (max(tracks[t]), len(tracks[t]), -t))
                history = by_track.get(track_id, [])
                told = [e for e in history if e["frame"]["index"] < end]
                row["track_id"] = track_id
                row["reported"] = told[-1]["emotion"] if told else None
                row["right"] = row["reported"] == row["label"]
                row["inherited"] = first_seen[track_id] < start
                firsts = [e["frame"]["index"] for t in tracks for e in by_track.get(t, [])
                          if start <= e["frame"]["index"] < end]
                row["first_event_s"] = (min(firsts) - start) / fps if firsts else None
                ends = [e["frame"]["index"] for e in history if e["type"] == "end"]
                row["overhang_s"] = max(0.0, (ends[0] - end) / fps) if ends else None
                changes, minutes = 0, 0.0
                for t in tracks:
                    t_events = by_track.get(t, [])
                    t_end = min([end] + [e["frame"]["index"] for e in t_events if e["type"] == "end"])
                    t_start = max(start, first_seen[t])
                    minutes += max(0, t_end - t_start) / fps / 60
                    changes += sum(1 for e in t_events
                                   if e["type"] == "change" and start <= e["frame"]["index"] < end)
                row["changes"], row["track_minutes"] = changes, minutes
            rows.append(row)
    gap_minutes = sum(s["end_frame"] - s["start_frame"] for s in timeline["segments"]
                      if s["kind"] == "gap") / fps / 60
    false_in_gaps, false_elsewhere = 0, 0
    for track_id, history in by_track.items():
        appear = [e for e in history if e["type"] == "appear"]
        if not appear or track_id in ever_on_face:
            continue
        kind = timeline["segments"][int(segment_of_frame[appear[0]["frame"]["index"]])]["kind"]
        if kind == "gap":
            false_in_gaps += 1
        else:
            false_elsewhere += 1
    face_minutes = (timeline["frames"] / fps / 60) - gap_minutes
    return {"rows": rows, **figures(rows), "false_tracks_in_gaps": false_in_gaps,
            "false_tracks_per_min": false_in_gaps / gap_minutes if gap_minutes else 0.0,
            "false_tracks_during_faces_per_min": false_elsewhere / face_minutes if face_minutes else 0.0,
            "gap_minutes": gap_minutes, "tracks": len(by_track)}


def figures(rows: list[dict]) -> dict:
    """Detection, accuracy (daemon vs model on the same detected faces), latency, overhang, flicker."""
    out = {}
    for name, chosen in (("single", [r for r in rows if r["kind"] == "single"]),
                         ("multi", [r for r in rows if r["kind"] == "multi"]), ("all", rows)):
        detected = [r for r in chosen if r["detected"]]
        firsts = [r["first_event_s"] for r in detected if r.get("first_event_s") is not None]
        overhangs = [r["overhang_s"] for r in detected if r.get("overhang_s") is not None]
        minutes = sum(r["track_minutes"] for r in detected)
        figure = {
            "faces": len(chosen), "detected": len(detected) / len(chosen) if chosen else None,
            "accuracy": float(np.mean([r["right"] for r in detected])) if detected else None,
            "model_accuracy": float(np.mean([r["model_right"] for r in detected])) if detected else None,
            "model_accuracy_all": float(np.mean([r["model_right"] for r in chosen])) if chosen else None,
            "first_event_s": _stat(firsts, "mean"), "first_event_p95_s": _stat(firsts, "p95"),
            "no_event": sum(1 for r in detected if r.get("first_event_s") is None),
            "overhang_s": _stat(overhangs, "mean"), "overhang_p95_s": _stat(overhangs, "p95"),
            "overhang_max_s": _stat(overhangs, "max"),
            "flicker": sum(r["changes"] for r in detected) / minutes if minutes else None,
            "inherited": sum(1 for r in detected if r.get("inherited")),
        }
        if figure["accuracy"] is not None:
            figure["gap"] = figure["model_accuracy"] - figure["accuracy"]
            figure["gap_se"] = standard_error([r["model_right"] - r["right"] for r in detected])
        out[name] = figure
    return out


def read_events(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def evaluate(clip: Path, timeline: dict, faces: np.ndarray, overrides: Sequence[tuple[str, str]] = (),
             workdir: Path | None = None) -> dict:
    """Run the daemon on the clip and score it; `faces` are the clean 48x48 images by row."""
    logging.getLogger("edge-emotion").setLevel(logging.WARNING)
    rows = sorted({f["row"] for s in timeline["segments"] for f in s["faces"]})
    probabilities = model_probabilities(overrides, faces[rows])
    from device.runtime.labels import FACE_LABELS

    model_labels = {row: FACE_LABELS[int(np.argmax(p))] for row, p in zip(rows, probabilities, strict=True)}
    with tempfile.TemporaryDirectory(prefix="e2e-") as tmp:
        events_path = (workdir or Path(tmp)) / "events.jsonl"
        events_path.unlink(missing_ok=True)
        started = time.perf_counter()
        summary, observed = run_daemon(clip, events_path, overrides)
        seconds = time.perf_counter() - started
        events = read_events(events_path)
    result = score(timeline, events, observed, model_labels)
    result["daemon_fps"] = summary["frames"] / seconds if seconds else 0.0
    result["frames"] = summary["frames"]
    result["overrides"] = [f"{k}={v}" for k, v in overrides]
    return result


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _sec(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(result: dict) -> None:
    """One table: rows single / multi / all faces; columns the figures."""
    header = (f"{'faces':<8}{'n':>5}{'detected':>10}{'daemon':>9}{'model':>8}{'gap (se)':>13}"
              f"{'1st ev s':>10}{'p95':>6}{'overhang s':>12}{'p95':>6}{'max':>6}{'flicker/min':>13}"
              f"{'inherited':>11}{'no event':>10}")
    print(header)
    for name in ("single", "multi", "all"):
        f = result[name]
        gap = "-" if f.get("gap") is None else f"{100 * f['gap']:+.1f}"
        if f.get("gap_se") is not None:
            gap += f" ({100 * f['gap_se']:.1f})"
        flicker = "-" if f["flicker"] is None else f"{f['flicker']:.2f}"
        print(f"{name:<8}{f['faces']:>5}{_pct(f['detected']):>10}{_pct(f['accuracy']):>9}"
              f"{_pct(f['model_accuracy']):>8}{gap:>13}{_sec(f['first_event_s']):>10}"
              f"{_sec(f['first_event_p95_s']):>6}{_sec(f['overhang_s']):>12}{_sec(f['overhang_p95_s']):>6}"
              f"{_sec(f['overhang_max_s']):>6}{flicker:>13}{f['inherited']:>11}{f['no_event']:>10}")
    print(f"face-free gaps: {result['gap_minutes']:.1f} min, {result['false_tracks_in_gaps']} false tracks "
          f"({result['false_tracks_per_min']:.2f}/min); false tracks while faces were shown: "
          f"{result['false_tracks_during_faces_per_min']:.2f}/min; {result['tracks']} tracks in all; "
          f"model on all faces (detected or not): {_pct(result['all']['model_accuracy_all'])}; "
          f"daemon {result['daemon_fps']:.0f} fps over {result['frames']} frames")
