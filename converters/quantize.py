"""The one converter: a trained Keras model → full-integer int8 TFLite (plus a float32 TFLite for
comparison), verified against float on held-out data, with a model card for each file.

    python -m converters.quantize --keras models/keras/face_mini_xception.keras \
        --data ../shared/datasets/fer2013/fer2013.csv.gz --name face_mini_xception

Calibration uses a few hundred real, preprocessed training samples stratified by class (never
noise). The check evaluates both .tflite files with the device's own code, reports accuracy,
macro-F1, top-3 and top-1 agreement, and exits non-zero when int8 loses more than --max-drop
accuracy points.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from converters.model_card import build_card, write_card
from device.runtime.labels import FACE_LABELS
from device.runtime.native_output import native_output_to_debug_log
from device.runtime.tflite_model import ModelLoadError
from training.calibration import face_calibration, voice_calibration
from training.data_errors import DataError
from training.evaluate import evaluate, keras_model_kind

FACE_PREPROCESSING = ("grey crop -> resize to 48x48 (INTER_AREA) -> cv2.equalizeHist -> raw pixels "
                      "0..255 into the model (normalisation is inside the model; int8 input = pixel "
                      "quantized with the input scale/zero point, via a 256-entry lookup table)")


def convert(model, calibration: np.ndarray | None) -> bytes:
    """float32 TFLite when `calibration` is None, else full-integer int8 with int8 I/O."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if calibration is not None:
        def representative() -> Iterator[list[np.ndarray]]:
            for sample in calibration:
                yield [sample[None].astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with native_output_to_debug_log("the TFLite converter", fd=1):
        return short_tensor_names(converter.convert())


def short_tensor_names(flatbuffer: bytes) -> bytes:
    """Keep each tensor's own layer path and drop the rest of its name.

    The converter names a tensor after every op it fused into it
    ("mini_xception_1/module4_b_bn_1/batchnorm/add_1;mini_xception_1/module4_b_sep_1/..."):
    about 8 KB of debug text in a 150 KB face model that a Pi loads for nothing. Nothing reads
    tensors by name (the device and the checks go by input and output index), and the weights
    and graph are untouched, so the results are bit-identical.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    for subgraph in model.subgraphs:
        seen: set[str] = set()
        for index, tensor in enumerate(subgraph.tensors):
            full = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
            name = full.split(";")[0].split("/", 1)[-1]
            name = name if name not in seen else f"{name}#{index}"
            seen.add(name)
            tensor.name = name
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def verify(float_path: Path, int8_path: Path, args: argparse.Namespace, kind: str,
           seen_in_training: bool = False) -> dict:
    """Evaluate both files on the same data with the device's code; compare. `seen_in_training`:
    the model was trained on the verification actors too, so its accuracy there is a fit, not an
    estimate (the card says so; the int8/float comparison holds all the same)."""
    if kind == "face_gate":
        from training.face_gate_task import tflite_check

        return tflite_check(float_path, int8_path, args.data, args.val_usage)
    results, predictions = {}, {}
    for variant, path in (("float32", float_path), ("int8", int8_path)):
        _, probs, report = evaluate(path, args.data, args.val_usage, args.val_actors, kind=kind)
        results[variant] = {k: report[k] for k in ("accuracy", "macro_f1", "top3", "uar", "n")}
        predictions[variant] = probs.argmax(axis=1)
    voice = kind == "voice"
    if not voice:
        # What the device scores with `face.flip_tta = true`: the int8 model on the face and its mirror.
        _, _, report = evaluate(int8_path, args.data, args.val_usage, flip_tta=True, kind=kind)
        results["int8_flip"] = {k: report[k] for k in ("accuracy", "macro_f1", "top3", "uar", "n")}
    drop = 100 * (results["float32"]["accuracy"] - results["int8"]["accuracy"])
    fit = ", trained on (a fit, not an estimate)" if seen_in_training else ""
    return {
        "split": f"{args.val_actors} actors{fit}" if voice else args.val_usage,
        "results": results,
        "int8_float_agreement": float(np.mean(predictions["float32"] == predictions["int8"])),
        "int8_accuracy_drop_points": drop,
    }


def quantize(args: argparse.Namespace) -> dict:
    import keras

    keras_path = Path(args.keras)
    if not keras_path.is_file():
        raise DataError(f"{keras_path}: no trained checkpoint; run `make train` first")
    model = keras.models.load_model(keras_path)
    kind = keras_model_kind(model)
    if kind == "voice":
        calibration = voice_calibration(args.data, args.train_actors, args.calibration, args.seed)
        labels, preprocessing = model_labels_voice()
    elif kind == "face_gate":
        from device.vision.face_gate import GATE_LABELS
        from training.face_gate_task import gate_calibration

        calibration = gate_calibration(args.data, args.train_usage, args.calibration, args.seed)
        labels, preprocessing = GATE_LABELS, FACE_PREPROCESSING
    else:
        calibration = face_calibration(args.data, args.train_usage, args.calibration, args.seed)
        labels, preprocessing = FACE_LABELS, FACE_PREPROCESSING
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    float_path = out_dir / f"{args.name}_float32.tflite"
    int8_path = out_dir / f"{args.name}_int8.tflite"
    float_path.write_bytes(convert(model, None))
    int8_path.write_bytes(convert(model, calibration))
    training = read_training_info(args.training_info)
    data = training.get("data")  # a plain string in training.json files of older runs
    seen = isinstance(data, dict) and bool(data.get("validation_seen_in_training"))
    metrics = verify(float_path, int8_path, args, kind, seen_in_training=seen)
    if args.cross_validation:
        metrics["cross_validation"] = read_cross_validation(args.cross_validation)
    metrics["command"] = "python -m converters.quantize " + shlex.join(sys.argv[1:])
    for path in (float_path, int8_path):
        card = build_card(path, architecture=model.name, parameters=int(model.count_params()),
                          labels=labels, preprocessing=preprocessing, training=training,
                          metrics=metrics, kind=kind)
        write_card(card, path)
    return metrics


def read_training_info(value: str | None) -> dict:
    """The run's `training.json` (a path) or the same JSON inline; its facts go into the card."""
    if not value:
        return {}
    path = Path(value)
    text = path.read_text() if path.is_file() else value
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"--training-info {value!r}: neither a JSON file nor JSON ({exc})") from None


def read_cross_validation(path: str) -> dict:
    """A finished `converters.cross_validation` run's summary.json: the recipe's speaker-independent
    estimate, carried into the card of a model trained on every actor (which has no held-out split)."""
    try:
        summary = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"--cross-validation {path}: cannot read the summary ({exc}); give the summary.json "
                        "that `python -m converters.cross_validation` wrote") from None
    if not summary.get("complete"):
        raise DataError(f"--cross-validation {path}: only folds {summary.get('folds_done')} of "
                        f"{summary.get('folds')} are done; finish the run (re-run it: finished folds are "
                        "skipped)")
    keys = ("folds", "clips", "int8_accuracy_mean", "int8_accuracy_sd", "int8_uar_mean", "int8_uar_sd")
    return {**{key: summary[key] for key in keys},
            "int8_accuracy_per_fold": [fold["int8_accuracy"] for fold in summary["per_fold"]]}


def model_labels_voice() -> tuple[tuple[str, ...], str]:
    from device.audio.log_mel import LOG_MEL_DESCRIPTION
    from device.runtime.voice_labels import VOICE_LABELS

    return VOICE_LABELS, LOG_MEL_DESCRIPTION


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keras", required=True, help="trained .keras checkpoint")
    parser.add_argument("--data", required=True, help="FER2013 CSV/folder, or RAVDESS folder for voice")
    parser.add_argument("--name", required=True, help="output stem, e.g. face_mini_xception")
    parser.add_argument("--out-dir", default="models")
    parser.add_argument("--train-usage", default="Training", help="calibration split (faces)")
    parser.add_argument("--val-usage", default="PublicTest", help="verification split (faces)")
    parser.add_argument("--train-actors", default="1-16", help="calibration actors (voice)")
    parser.add_argument("--val-actors", default="17-20", help="verification actors (voice)")
    parser.add_argument("--calibration", type=int, default=500, help="calibration samples")
    parser.add_argument("--max-drop", type=float, default=1.0, help="allowed int8 accuracy loss (points)")
    parser.add_argument("--training-info", help="the run's training.json (path or inline JSON), for the card")
    parser.add_argument("--cross-validation", metavar="SUMMARY_JSON",
                        help="voice: the recipe's finished cross-validation summary.json, for the card")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        metrics = quantize(args)
    except (DataError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for variant, row in metrics["results"].items():
        print(f"{args.name} {variant:>7}: accuracy {row['accuracy']:.4f}  macro-F1 {row['macro_f1']:.4f}  "
              f"top-3 {row['top3']:.4f}  n={row['n']}")
    print(f"{args.name} int8/float agreement {metrics['int8_float_agreement']:.4f}, "
          f"int8 loses {metrics['int8_accuracy_drop_points']:.2f} points")
    summary = {"name": args.name, **{f"{v}_{k}": r[k] for v, r in metrics["results"].items()
                                     for k in ("accuracy", "macro_f1", "top3")},
               "agreement": metrics["int8_float_agreement"]}
    print(json.dumps(summary))
    if metrics["int8_accuracy_drop_points"] > args.max_drop:
        print(f"error: int8 loses {metrics['int8_accuracy_drop_points']:.2f} accuracy points, more than "
              f"the allowed {args.max_drop}; recalibrate with more samples (--calibration) or retrain",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
