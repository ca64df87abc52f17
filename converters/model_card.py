"""Model cards: what a shipped .tflite is, how it was made and how well it does, as measured.

The device reads the JSON card to refuse a model whose bytes (size and SHA-256), input shape,
dtype or label count do not match what the card promises.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from device.runtime.tflite_model import TFLiteModel, invoke_latency_ms


def build_card(tflite_path: Path, *, architecture: str, parameters: int, labels: tuple[str, ...],
               preprocessing: str, training: dict, metrics: dict, kind: str) -> dict:
    """Assemble the card from the file itself (tensor specs, size, latency) and the caller's facts."""
    model = TFLiteModel(tflite_path, num_threads=1)
    latency = invoke_latency_ms(model)
    return {
        "name": tflite_path.stem,
        "kind": kind,
        "architecture": architecture,
        "parameters": parameters,
        "file_bytes": tflite_path.stat().st_size,
        "sha256": hashlib.sha256(tflite_path.read_bytes()).hexdigest(),
        "input": {"shape": list(model.input.shape), "dtype": model.input.dtype.name,
                  "scale": model.input.scale, "zero_point": model.input.zero_point},
        "output": {"shape": list(model.output.shape), "dtype": model.output.dtype.name,
                   "scale": model.output.scale, "zero_point": model.output.zero_point},
        "labels": list(labels),
        "preprocessing": preprocessing,
        "training": training,
        "metrics": metrics,
        "latency_single_thread_ms": {**latency, "runtime": model.runtime},
        "date": dt.date.today().isoformat(),
    }


def _describe(value: object) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{key}: {item}" for key, item in value.items())
    return str(value)


def _training_commands(training: dict) -> list[str]:
    """One line per run, oldest first: a warm restart lists the run it continued from, and a
    distilled run the models it learnt from (their files may since have been replaced)."""
    runs = []
    while training:
        runs.append(training)
        training = training.get("continued_from", {})
    lines = []
    for step, run in enumerate(reversed(runs), start=1):
        label = "training command" if len(runs) == 1 else f"training step {step}"
        epochs = f" ({run['epochs_run']} epochs)" if "epochs_run" in run else ""
        lines.append(f"- {label}: `{run.get('command', '?')}`{epochs}")
        lines += [f"  - distilled from `{teacher['checkpoint']}`, trained by `{teacher.get('command', '?')}`"
                  for teacher in run.get("teachers", [])]
    return lines or ["- training command: ?"]


def card_markdown(card: dict) -> str:
    lines = [f"# {card['name']}", "",
             f"- architecture: {card['architecture']} ({card['parameters']:,} parameters)",
             f"- file: {card['file_bytes'] / 1024:.1f} KB; input {card['input']['shape']} "
             f"{card['input']['dtype']} (scale {card['input']['scale']:g}, zero point "
             f"{card['input']['zero_point']})",
             f"- labels: {', '.join(card['labels'])}",
             f"- preprocessing: {card['preprocessing']}",
             f"- training data: {_describe(card['training'].get('data', '?'))}",
             *_training_commands(card["training"]),
             f"- median single-thread invoke: {card['latency_single_thread_ms']['median_ms']:.3f} ms "
             f"(p95 {card['latency_single_thread_ms']['p95_ms']:.3f} ms, "
             f"{card['latency_single_thread_ms']['runtime']})",
             f"- date: {card['date']}", "", "## Metrics (as measured by the conversion check)", "",
             "| model | split | n | accuracy | macro-F1 | top-3 | UAR |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for variant, m in card["metrics"].get("results", {}).items():
        lines.append(f"| {variant} | {card['metrics'].get('split', '?')} | {m['n']} | {m['accuracy']:.4f} | "
                     f"{m['macro_f1']:.4f} | {m['top3']:.4f} | {m['uar']:.4f} |")
    if "gate" in card["metrics"]:
        gate = card["metrics"]["gate"]
        haar = gate.get("haar_false_accept", {})
        lines += ["", "Face gate on the same split (int8): a crop passes at P(face) >= threshold; false "
                  f"accepts of all non-face patches and of the {gate.get('haar_patches', 0)} that are Haar "
                  "false positives",
                  "", "| threshold | face recall | false accepts | of Haar's false positives | accuracy |",
                  "| --- | --- | --- | --- | --- |"]
        for threshold, row in gate["thresholds"].items():
            shown = f"{haar[threshold]:.4f}" if threshold in haar else "-"
            lines.append(f"| {threshold} | {row['face_recall']:.4f} | {row['false_accept']:.4f} | {shown} | "
                         f"{row['accuracy']:.4f} |")
    if "cross_validation" in card["metrics"]:
        cv = card["metrics"]["cross_validation"]
        per_fold = " / ".join(f"{100 * accuracy:.2f}" for accuracy in cv["int8_accuracy_per_fold"])
        lines += ["", f"Speaker-independent estimate of the recipe ({cv['folds']}-fold cross-validation, "
                  f"{cv['clips']} clips, each scored by a model that never heard its speaker; int8): "
                  f"accuracy **{100 * cv['int8_accuracy_mean']:.2f}% ± {100 * cv['int8_accuracy_sd']:.2f}** "
                  f"(per fold {per_fold}), "
                  f"UAR {100 * cv['int8_uar_mean']:.2f}% ± {100 * cv['int8_uar_sd']:.2f}"]
    if "int8_float_agreement" in card["metrics"]:
        lines += ["", f"int8/float top-1 agreement: {card['metrics']['int8_float_agreement']:.4f}"]
    if "command" in card["metrics"]:
        lines += ["", f"Measured with: `{card['metrics']['command']}`"]
    return "\n".join(lines) + "\n"


def write_card(card: dict, tflite_path: Path) -> None:
    tflite_path.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    tflite_path.with_suffix(".md").write_text(card_markdown(card))
