"""`python -m training.evaluate --model M --data D`: score a .tflite (through the device's own
preprocessing and interpreter code) or a .keras model, and print one JSON line last. Repeating
`--model` scores the ensemble: the models' probabilities averaged (how a teacher ensemble is measured).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from device.runtime.labels import FACE_LABELS
from device.runtime.model_card_check import read_card
from device.runtime.tflite_model import ModelLoadError
from training.data_errors import DataError
from training.fer_data import load_faces
from training.metrics import classification_report


def face_probabilities(model_path: Path, faces: np.ndarray, flip_tta: bool = False,
                       inner_view: float = 0.0) -> np.ndarray:
    """Probabilities for raw 48x48 faces; .tflite goes through `device.FaceClassifier`, with the
    daemon's views (`inner_view` as `face.inner_view`)."""
    if model_path.suffix == ".tflite":
        from device.vision.face_classifier import FaceClassifier

        classifier = FaceClassifier(model_path, num_threads=1, flip_tta=flip_tta, inner_view=inner_view)
        return np.stack([classifier.classify(face) for face in faces])
    if inner_view:
        raise DataError(f"{model_path}: --inner-view scores .tflite models, through the daemon's classifier")
    if model_path.suffix == ".keras":
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras

        from device.vision.preprocessing import equalize_batch
        from training.face_task import predict_faces

        model = keras.models.load_model(model_path)
        return predict_faces(model, equalize_batch(faces)[..., None].astype(np.float32), flip=flip_tta)
    raise DataError(f"{model_path}: expected a .tflite or .keras model")


def keras_model_kind(model) -> str:
    """A Keras model's kind from its own input (the builders name it `face` or `log_mel`); the face
    gate also takes faces but answers face or not, so it goes by its model name."""
    if model.name == "face_gate":
        return "face_gate"
    return "voice" if model.inputs[0].name.startswith("log_mel") else "face"


def model_kind(model_path: Path) -> str:
    """"face" or "voice": a .tflite's from its card (never from its file name), a .keras's from its input."""
    if model_path.suffix == ".tflite":
        try:
            return str(read_card(model_path.with_suffix(".json"))["kind"])
        except (ModelLoadError, KeyError) as exc:
            raise DataError(f"{model_path}: cannot tell a face from a voice model without its card's "
                            f"`kind` ({exc}); keep the .json card beside the model") from None
    if model_path.suffix == ".keras":
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras

        return keras_model_kind(keras.models.load_model(model_path))
    raise DataError(f"{model_path}: expected a .tflite or .keras model")


def evaluate(model_path: Path, data: str, usage: str = "PublicTest", actors: str = "17-20",
             flip_tta: bool = False, kind: str = "",
             inner_view: float = 0.0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Return (true labels, probabilities, report) for a face or voice model on `data`; `kind` when
    the caller knows it (a freshly converted file has no card yet), else the model says."""
    if not model_path.is_file():
        raise DataError(f"{model_path}: model file not found")
    if (kind or model_kind(model_path)) == "voice":
        from training.voice_evaluation import voice_clip_predictions

        y_true, probs, labels = voice_clip_predictions(model_path, data, actors)
    else:
        faces = load_faces(data, usage)
        y_true, labels = faces.labels, FACE_LABELS
        probs = face_probabilities(model_path, faces.faces, flip_tta, inner_view)
    return y_true, probs, classification_report(y_true, probs, labels)


def evaluate_ensemble(model_paths: list[Path], data: str, usage: str = "PublicTest", actors: str = "17-20",
                      flip_tta: bool = False, inner_view: float = 0.0) -> tuple[np.ndarray, np.ndarray, dict]:
    """`evaluate` for the mean of several models' probabilities (one model: that model's own)."""
    scored = [evaluate(path, data, usage, actors, flip_tta, inner_view=inner_view) for path in model_paths]
    y_true, _, first = scored[0]
    for path, (y, _, _) in zip(model_paths[1:], scored[1:], strict=True):
        if y.shape != y_true.shape or not np.array_equal(y, y_true):
            raise DataError(f"{path} scores other samples than {model_paths[0]} (a face and a voice model?); "
                            "an ensemble needs models of one kind")
    probs = np.mean([p for _, p, _ in scored], axis=0)
    return y_true, probs, classification_report(y_true, probs, list(first["per_class"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, action="append",
                        help=".tflite or .keras (repeat: the ensemble's averaged probabilities)")
    parser.add_argument("--data", required=True, help="FER2013 CSV[.gz] / image folder, or RAVDESS folder")
    parser.add_argument("--usage", default="PublicTest", help="FER2013 Usage (or split folder)")
    parser.add_argument("--actors", default="17-20", help="RAVDESS actors, e.g. 17-20 or 1,3,5")
    parser.add_argument("--flip-tta", action="store_true", help="average with the mirrored face")
    parser.add_argument("--inner-view", type=float, default=0.0, metavar="F",
                        help="also score the face's centred F-square, as the daemon's "
                             "face.inner_view (.tflite only)")
    args = parser.parse_args(argv)
    if not 0.0 <= args.inner_view < 1.0:
        print(f"error: --inner-view {args.inner_view}: a fraction of the face's side, 0 (off) to 0.99",
              file=sys.stderr)
        return 2
    try:
        _, _, report = evaluate_ensemble(args.model, args.data, args.usage, args.actors, args.flip_tta,
                                         args.inner_view)
    except (DataError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, row in report["per_class"].items():
        print(f"{name:>10}  precision {row['precision']:.3f}  recall {row['recall']:.3f}  "
              f"f1 {row['f1']:.3f}  n={row['support']}")
    summary = {k: report[k] for k in ("accuracy", "macro_f1", "top3", "uar", "n")}
    models = [str(path) for path in args.model]
    print(json.dumps({"model": models[0] if len(models) == 1 else models, **summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
