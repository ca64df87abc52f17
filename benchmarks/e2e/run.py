"""The end-to-end run behind `make e2e` and `make bench`: PublicTest clip, daemon, scores, table."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.e2e.clip_generator import ClipSpec, generate
from benchmarks.e2e.scorer import evaluate, print_table

FER_RELATIVE = Path("fer2013") / "fer2013.csv.gz"
MIN_FACE_STD = 5.0  # PublicTest holds one all-black image: not a face


def publictest_faces(csv: Path):
    """PublicTest faces and labels (never Training), with the rows fit to show (not blank)."""
    import numpy as np

    from training.fer_data import load_faces

    faces = load_faces(csv, "PublicTest")
    usable = np.flatnonzero(faces.faces.reshape(len(faces), -1).std(axis=1) >= MIN_FACE_STD)
    return faces.faces, faces.labels, usable


def bench_keys(result: dict) -> dict:
    """The figures `make bench` puts in its JSON line."""
    single, every = result["single"], result["all"]
    rounded = {k: (None if v is None else round(v, 4)) for k, v in {
        "e2e_detected": single["detected"], "e2e_detected_multi": result["multi"]["detected"],
        "e2e_accuracy": every["accuracy"], "e2e_model_accuracy": every["model_accuracy"],
        "e2e_gap": every.get("gap"), "e2e_gap_se": every.get("gap_se"),
        "e2e_first_event_s": every["first_event_s"],
        "e2e_first_event_p95_s": every["first_event_p95_s"], "e2e_track_overhang_s": every["overhang_s"],
        "e2e_track_overhang_p95_s": every["overhang_p95_s"],
        "e2e_track_overhang_max_s": every["overhang_max_s"],
        "e2e_flicker": every["flicker"], "e2e_false_tracks_per_min": result["false_tracks_per_min"],
        "e2e_inherited_ids": every["inherited"], "e2e_faces": every["faces"],
    }.items()}
    return rounded


def run_e2e(shared: Path, out_dir: Path = Path("runs/e2e"), spec: ClipSpec | None = None,
            overrides: list[tuple[str, str]] | None = None) -> dict:
    """Print the table; return the bench figures ({} with a note when the datasets are absent)."""
    csv = Path(shared) / FER_RELATIVE
    if not csv.is_file():
        print(f"e2e skipped: {csv} not found (FER2013 PublicTest is needed for the clip)")
        return {}
    spec = spec or ClipSpec()
    faces, labels, usable = publictest_faces(csv)
    faces_id = f"FER2013 PublicTest {csv.stat().st_size}"
    clip, timeline_path = generate(faces, labels, usable, spec, out_dir, faces_id)
    timeline = json.loads(timeline_path.read_text())
    result = evaluate(clip, timeline, faces, overrides or [])
    (out_dir / "last_result.json").write_text(json.dumps(result, indent=1))
    scenes = len(timeline["segments"]) // 2
    print(f"clip {clip} ({timeline['frames']} frames, {scenes} scenes, seed {spec.seed})"
          + (f"; daemon with {' '.join(result['overrides'])}" if overrides else "; daemon defaults"))
    print_table(result)
    return bench_keys(result)
