"""Per-model figures for `python -m benchmarks`: size, parameters, int8 vs float32 invoke latency
(single thread, the device's interpreter), and validation accuracy when the shared data is there.
"""

from __future__ import annotations

import json
from pathlib import Path

from device.runtime.labels import FACE_LABELS
from device.runtime.tflite_model import TFLiteModel, invoke_latency_ms
from training.fer_data import FaceSet, load_faces


def model_pairs(models: Path) -> dict[str, dict[str, Path]]:
    """Group models/<stem>_int8.tflite with models/<stem>_float32.tflite by stem."""
    pairs: dict[str, dict[str, Path]] = {}
    for path in sorted(models.glob("*.tflite")):
        stem, _, variant = path.stem.rpartition("_")
        pairs.setdefault(stem or path.stem, {})[variant] = path
    return pairs


def face_accuracy(path: Path, faces: FaceSet, flip_tta: bool = False) -> dict[str, float]:
    """PublicTest figures through the device's classifier (`flip_tta` as `face.flip_tta`)."""
    from training.evaluate import face_probabilities
    from training.metrics import classification_report

    probs = face_probabilities(path, faces.faces, flip_tta)
    report = classification_report(faces.labels, probs, FACE_LABELS)
    return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"], "top3": report["top3"]}


def run_model_bench(models: Path, shared: Path) -> dict:
    """Print one row per model file and return the figures as a flat dict."""
    fer = shared / "fer2013" / "fer2013.csv.gz"
    faces = None
    if fer.is_file():
        faces = load_faces(str(fer), "PublicTest")
    figures: dict = {}
    print(f"{'model':<34} {'params':>8} {'KB':>7} {'median ms':>10} {'p95 ms':>8} {'PublicTest':>10} "
          f"{'+flip TTA':>10}")
    for stem, variants in model_pairs(models).items():
        for variant, path in sorted(variants.items()):
            card_path = path.with_suffix(".json")
            card = json.loads(card_path.read_text()) if card_path.exists() else {}
            if card.get("kind") not in ("face", "face_gate"):
                continue  # voice models are measured by the voice bench, per clip
            latency = invoke_latency_ms(TFLiteModel(path, num_threads=1), repeats=500)
            key = f"{stem}_{variant}"
            row = {"parameters": card.get("parameters"), "kb": round(path.stat().st_size / 1024, 1),
                   "median_ms": round(latency["median_ms"], 4), "p95_ms": round(latency["p95_ms"], 4)}
            if faces is not None and card.get("kind") == "face":  # the gate's figures are in its card
                row.update({k: round(v, 4) for k, v in face_accuracy(path, faces).items()})
                if variant == "int8":
                    row["flip_tta_accuracy"] = round(face_accuracy(path, faces, flip_tta=True)["accuracy"], 4)
            figures[key] = row
            accuracy = f"{row['accuracy']:.2%}" if "accuracy" in row else "no data"
            flipped = f"{row['flip_tta_accuracy']:.2%}" if "flip_tta_accuracy" in row else ""
            print(f"{key:<34} {row['parameters'] or '?':>8} {row['kb']:>7} {row['median_ms']:>10.4f} "
                  f"{row['p95_ms']:>8.4f} {accuracy:>10} {flipped:>10}")
    return figures
