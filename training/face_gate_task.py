"""The face gate as a training task: FER2013 faces against mined non-face patches, face or not.

Positives are FER2013 faces (Training rows to train on, PublicTest rows to validate on; blank
images left out, they are not faces). Negatives are 48x48 patches mined from pictures shipped by
scikit-image and matplotlib (`training.face_gate_data`), split by source picture. Every sample
goes through the device's preprocessing (equalized 48x48 crop), and training uses the face
models' augmentation (mirror, rotation, zoom, shift, contrast, brightness) on both classes, so
shifted and re-lit faces stay faces and a texture does not become a face by being brighter.

`evaluate` reports what the gate is for: face recall (faces let through) and the false-accept
rate (non-face patches let through) at thresholds on P(face), besides plain accuracy.
"""

from __future__ import annotations

from collections import Counter
from functools import partial

import numpy as np

from device.vision.face_gate import FACE_INDEX, GATE_LABELS
from device.vision.preprocessing import equalize_batch
from training.face_gate_data import NegativeSpec, cached_negatives
from training.face_task import augment_faces
from training.fer_data import load_faces
from training.task import Task

MIN_FACE_STD = 5.0  # all-black FER2013 rows (11 Training, 1 PublicTest) are not faces
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def usable_faces(faces: np.ndarray) -> np.ndarray:
    return faces[faces.reshape(len(faces), -1).std(axis=1) >= MIN_FACE_STD]


def gate_rates(labels: np.ndarray, face_probs: np.ndarray, threshold: float) -> dict[str, float]:
    """Face recall and false-accept rate when P(face) >= threshold lets a crop through."""
    admitted = face_probs >= threshold
    faces, others = labels == FACE_INDEX, labels != FACE_INDEX
    return {"face_recall": float(admitted[faces].mean()) if faces.any() else 0.0,
            "false_accept": float(admitted[others].mean()) if others.any() else 0.0,
            "accuracy": float(np.mean(admitted == faces))}


def threshold_table(labels: np.ndarray, face_probs: np.ndarray,
                    sources: list[str] | None = None) -> dict:
    """Recall and false-accept rate at each threshold; with sources (`picture/kind`), the false-accept
    rate at each threshold on the detectors' own false positives alone (kind `haar`: what the gate
    is for), and per source at 0.5."""
    table = {f"{t:g}": gate_rates(labels, face_probs, t) for t in THRESHOLDS}
    out: dict = {"thresholds": table}
    if sources is not None:
        names = np.asarray(sources)
        haar = np.char.endswith(names.astype(str), "/haar")
        if haar.any():
            out["haar_false_accept"] = {f"{t:g}": float(np.mean(face_probs[haar] >= t)) for t in THRESHOLDS}
            out["haar_patches"] = int(haar.sum())
        out["false_accept_by_source_at_0.5"] = {name: float(np.mean(face_probs[names == name] >= 0.5))
                                                 for name in sorted(set(sources)) if name != "face"}
    return out


def gate_arrays(data: str, usage: str, split: str,
                spec: NegativeSpec) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """Equalized (N, 48, 48, 1) float32 samples, labels (0 not_face, 1 face), sources, description."""
    faces = usable_faces(load_faces(data, usage).faces)
    negatives, sources = cached_negatives(split, spec)
    x = np.concatenate([equalize_batch(faces), negatives])[..., None].astype(np.float32)
    y = np.concatenate([np.full(len(faces), FACE_INDEX), np.full(len(negatives), 1 - FACE_INDEX)])
    counts = ", ".join(f"{name} {n}" for name, n in Counter(s.split("/")[0] for s in sources).most_common())
    haar = sum(s.endswith("/haar") for s in sources)
    text = (f"{data} {usage}: {len(faces)} faces; {len(negatives)} non-face patches from the {split} "
            f"pictures ({counts}), {haar} of them Haar false positives, the rest random boxes")
    return x, y.astype(np.int64), ["face"] * len(faces) + sources, text


def face_gate_task(data: str, train_usage: str, val_usage: str, seed: int) -> Task:
    """`seed` is the training run's; the negatives are one fixed data set (NegativeSpec's own seed),
    the same for every run, the converter's calibration and its check."""
    spec = NegativeSpec()
    x_train, y_train, _, train_text = gate_arrays(data, train_usage, "train", spec)
    x_val, y_val, val_sources, val_text = gate_arrays(data, val_usage, "val", spec)

    def evaluate(model) -> tuple[np.ndarray, np.ndarray]:
        return y_val, model.predict(x_val, batch_size=512, verbose=0)

    def extras(model) -> dict:
        probs = model.predict(x_val, batch_size=512, verbose=0)[:, FACE_INDEX]
        return threshold_table(y_val, probs, val_sources)

    return Task(
        labels=GATE_LABELS,
        x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val,
        augment=partial(augment_faces, strength=1.0),
        evaluate=evaluate,
        extras=extras,
        description={"train": train_text, "val": val_text,
                     "negatives": "mined by training/face_gate_data.py (split by source picture; make e2e's "
                                  "backgrounds held out of both splits)",
                     "preprocessing": "grey crop -> 48x48 -> cv2.equalizeHist -> raw pixels 0..255"},
    )


def gate_validation(data: str, usage: str = "PublicTest") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The validation split as equalized uint8 crops (N, 48, 48), labels and sources."""
    x, y, sources, _ = gate_arrays(data, usage, "val", NegativeSpec())
    return x[..., 0].astype(np.uint8), y, sources


def gate_calibration(data: str, usage: str, count: int, seed: int) -> np.ndarray:
    """`count` equalized training samples for int8 calibration, half faces, half non-face patches."""
    x, y, _, _ = gate_arrays(data, usage, "train", NegativeSpec())
    rng = np.random.default_rng(seed)
    picked = np.concatenate([rng.permutation(np.flatnonzero(y == label))[:count // 2] for label in (0, 1)])
    return x[rng.permutation(picked)]


def tflite_face_probabilities(path, crops: np.ndarray) -> np.ndarray:
    """P(face) for equalized crops through the device's own gate code (lookup table, interpreter)."""
    from device.vision.face_gate import FaceGate

    gate = FaceGate(path, threshold=0.5, num_threads=1)
    return np.array([gate.score(crop) for crop in crops], dtype=np.float32)


def tflite_check(float_path, int8_path, data: str, usage: str) -> dict:
    """The converter's float-vs-int8 check for the gate, on the validation split: both files through
    the device's code, accuracy at 0.5 and face recall / false-accept rate at every threshold."""
    from training.metrics import classification_report

    crops, labels, sources = gate_validation(data, usage)
    results, predictions, tables = {}, {}, {}
    for variant, path in (("float32", float_path), ("int8", int8_path)):
        face = tflite_face_probabilities(path, crops)
        probs = np.empty((len(face), 2), np.float32)
        probs[:, FACE_INDEX], probs[:, 1 - FACE_INDEX] = face, 1.0 - face
        report = classification_report(labels, probs, GATE_LABELS)
        results[variant] = {k: report[k] for k in ("accuracy", "macro_f1", "top3", "uar", "n")}
        predictions[variant] = face >= 0.5
        tables[variant] = threshold_table(labels, face, sources)
    drop = 100 * (results["float32"]["accuracy"] - results["int8"]["accuracy"])
    return {"split": f"{usage} faces + validation pictures' patches", "results": results,
            "int8_float_agreement": float(np.mean(predictions["float32"] == predictions["int8"])),
            "int8_accuracy_drop_points": drop, "gate": tables["int8"], "gate_float32": tables["float32"]}
