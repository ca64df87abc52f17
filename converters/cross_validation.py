"""Speaker-independent k-fold cross-validation of a voice recipe: `python -m converters.cross_validation`.

    python -m converters.cross_validation --data ../shared/datasets/ravdess --out runs/cv_voice_cnn \\
        --model voice_cnn --width 1.25 --epochs 45 --batch-size 32 --lr 3e-3

The actors (01-20) are split into folds of consecutive actors (5 folds: 01-04, 05-08, ..., 17-20;
each holds two men and two women). Each fold's actors are its test speakers and the others its
training speakers, so every actor is tested exactly once and never by a model that heard them.
Options this script does not know are the recipe, passed on unchanged to the one training entry
point (`training.train`). For each fold:

1. train with `training.train` on the training actors. `--selection fixed` (the default): a fixed
   number of epochs and the final epoch's model is kept (`--keep last`); the test actors are the
   run's validation split only so that its curve can be watched, nothing is chosen on them.
   `--selection inner`: `--inner-val` of the training actors are held out as a validation split,
   the model trains on the rest, and the best epoch on those (early stopping) is kept.
2. convert that model with the project's converter (`converters.quantize.convert`) to float32 and
   int8 TFLite, calibrated on windows of the fold's training actors only.
3. score every clip of the test actors with the device's own code (`training.evaluate`: log-mel,
   VAD-weighted 2 s windows every 0.5 s, the TFLite interpreter wrapper the daemon uses).

The voice task computes no statistics from data for normalisation (the model's input scaling is a
fixed constant inside it); the class weights, batch-norm statistics and int8 calibration come from
the fold's training actors only.

Resuming: a fold whose `fold_N/results.json` exists is skipped; a fold whose training stopped part
way resumes from its checkpoint (the training entry point does that). So the run can be interrupted
and started again with the same command, or run in pieces with `--only` (`--summary` reports the
folds finished so far without training). The summary (a table, the
markdown `report.md` and `summary.json` in `--out`, and one JSON line last on stdout) covers every
fold finished so far and says whether all are.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from training.data_errors import DataError
from training.ravdess_data import find_clips, parse_actors

RESULTS = "results.json"
CONFIG = "cv.json"
CALIBRATION_SAMPLES = 500  # as `converters.quantize` calibrates the shipped model
METRICS = ("accuracy", "uar", "macro_f1", "top3", "n")
# Options the cross-validation sets for every fold; the recipe must not set them.
RESERVED = ("--data", "--val-data", "--train-actors", "--val-actors", "--out", "--keep", "--fresh",
            "--stop-after")


def actor_list(actors: tuple[int, ...] | list[int]) -> str:
    """(1, 2, 3) → "1,2,3", the form `--train-actors` and `--actors` take."""
    return ",".join(str(a) for a in actors)


def fold_assignment(actors: tuple[int, ...], folds: int) -> list[tuple[int, ...]]:
    """The test actors of each fold: the sorted actors cut into `folds` runs of equal length.

    With actors 1-20 and 5 folds: (1-4), (5-8), ..., (17-20); odd actors are men and even ones
    women, so every fold tests two of each."""
    actors = tuple(sorted(set(actors)))
    if folds < 2:
        raise DataError(f"--folds {folds}: cross-validation needs at least 2 folds")
    if len(actors) % folds:
        raise DataError(f"{len(actors)} actors do not split into {folds} folds of equal size")
    size = len(actors) // folds
    return [actors[i * size:(i + 1) * size] for i in range(folds)]


def fold_splits(actors: tuple[int, ...], folds: int, selection: str, inner_val: int
                ) -> list[dict[str, tuple[int, ...]]]:
    """Per fold: `train`, `val` (the split the training run validates on) and `test` actors.

    fixed: val is the test actors (watched, never selected on); inner: val is `inner_val` of the
    training actors, taken out of the training split: the highest-numbered ones, alternating women
    and men (with 4 of 1-20: 17-20 for folds 1-4, 13-16 for fold 5)."""
    splits = []
    tests = fold_assignment(actors, folds)
    for test in tests:
        rest = tuple(a for a in sorted(set(actors)) if a not in test)
        if selection == "fixed":
            splits.append({"train": rest, "val": test, "test": test})
            continue
        if not 0 < inner_val < len(rest):
            raise DataError(f"--inner-val {inner_val}: needs between 1 and {len(rest) - 1} of the "
                            f"{len(rest)} training actors")
        women = [a for a in rest if a % 2 == 0]
        men = [a for a in rest if a % 2 == 1]
        order = [a for pair in zip(women[::-1], men[::-1], strict=False) for a in pair]
        order += [a for a in (women[::-1] + men[::-1]) if a not in order]
        val = tuple(sorted(order[:inner_val]))
        splits.append({"train": tuple(a for a in rest if a not in val), "val": val, "test": test})
    return splits


def check_splits(splits: list[dict[str, tuple[int, ...]]], actors: tuple[int, ...], selection: str) -> None:
    """Every actor tested exactly once; within a fold no actor in two splits (in fixed mode the
    validation split is the test split itself, watched only)."""
    tested = sorted(a for split in splits for a in split["test"])
    if tested != sorted(set(actors)):
        raise AssertionError(f"test folds cover {tested}, not each of {sorted(set(actors))} once")
    for split in splits:
        train, val, test = set(split["train"]), set(split["val"]), set(split["test"])
        if train & test or train & val or (selection == "inner" and val & test):
            raise AssertionError(f"fold {split} shares actors between its splits")
        if train | val | test != set(actors):
            raise AssertionError(f"fold {split} leaves out actors")


def fold_train_argv(recipe: list[str], data: str, split: dict, out: Path, selection: str) -> list[str]:
    keep = ["--keep", "last"] if selection == "fixed" else []
    return [*recipe, "--data", data, "--train-actors", actor_list(split["train"]),
            "--val-actors", actor_list(split["val"]), "--out", str(out), *keep]


def check_recipe(recipe: list[str]) -> None:
    from training.train import FACE_MODELS, parse_args

    for option in recipe:
        if option.split("=")[0] in RESERVED:
            raise DataError(f"{option}: the cross-validation sets {', '.join(RESERVED)} per fold; "
                            "leave them out of the recipe")
    if "--model" not in [o.split("=")[0] for o in recipe]:
        raise DataError("give the recipe: --model voice_cnn and the training options (--epochs ...)")
    model = parse_args([*recipe, "--data", "."]).model  # the entry point rejects a bad recipe here, once
    if model in FACE_MODELS:
        raise DataError(f"--model {model} is a face model; the cross-validation is over RAVDESS actors")


def train_fold(argv: list[str]) -> dict:
    """Train (or resume, or find finished) one fold with the one training entry point."""
    import keras

    from training import train

    keras.backend.clear_session()
    print("python -m training.train " + shlex.join(argv), flush=True)
    code = train.main(argv)
    if code != 0:
        raise DataError(f"training failed (exit {code}): python -m training.train {shlex.join(argv)}")
    gc.collect()
    return json.loads((Path(argv[argv.index("--out") + 1]) / "training.json").read_text())


def convert_and_score(checkpoint: Path, data: str, split: dict, fold_dir: Path, seed: int) -> dict:
    """float32 and int8 TFLite of the fold's model (int8 calibrated on its training actors), both
    scored per clip on its test actors with the device's code."""
    import keras

    from converters.quantize import convert
    from training.calibration import voice_calibration
    from training.evaluate import evaluate

    model = keras.models.load_model(checkpoint)
    calibration = voice_calibration(data, actor_list(split["train"]), CALIBRATION_SAMPLES, seed)
    paths = {"float32": fold_dir / "model_float32.tflite", "int8": fold_dir / "model_int8.tflite"}
    paths["float32"].write_bytes(convert(model, None))
    paths["int8"].write_bytes(convert(model, calibration))
    scores, predictions = {}, {}
    for variant, path in paths.items():
        _, probs, report = evaluate(path, data, actors=actor_list(split["test"]), kind="voice")
        scores[variant] = {**{k: report[k] for k in METRICS},
                           "recall": {name: row["recall"] for name, row in report["per_class"].items()},
                           "confusion_matrix": report["confusion_matrix"]}
        predictions[variant] = probs.argmax(axis=1)
    scores["int8_float_agreement"] = float(np.mean(predictions["float32"] == predictions["int8"]))
    scores["parameters"] = int(model.count_params())
    scores["int8_bytes"] = paths["int8"].stat().st_size
    return scores


def run_fold(number: int, split: dict, args: argparse.Namespace, recipe: list[str]) -> dict:
    fold_dir = Path(args.out) / f"fold_{number}"
    fold_dir.mkdir(parents=True, exist_ok=True)
    argv = fold_train_argv(recipe, args.data, split, fold_dir / "train", args.selection)
    started = time.monotonic()
    training = train_fold(argv)
    trained = time.monotonic()
    scores = convert_and_score(fold_dir / "train" / "best.keras", args.data, split, fold_dir,
                              args.calibration_seed)
    result = {
        "fold": number,
        "test_actors": list(split["test"]), "train_actors": list(split["train"]),
        "val_actors": list(split["val"]), "selection": args.selection,
        "train_command": "python -m training.train " + shlex.join(argv),
        "epochs_run": training["epochs_run"],
        "kept_epoch": training.get("kept_epoch", training["best_epoch"]),
        "train_minutes": round((trained - started) / 60, 2),
        "convert_score_minutes": round((time.monotonic() - trained) / 60, 2),
        **scores,
    }
    temporary = fold_dir / (RESULTS + ".tmp")
    temporary.write_text(json.dumps(result, indent=1) + "\n")
    temporary.replace(fold_dir / RESULTS)  # all or nothing: a half-written file never counts as done
    return result


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for a single value)."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def summarise(results: list[dict], folds: int) -> dict:
    summary: dict = {"folds_done": [r["fold"] for r in results], "folds": folds,
                     "complete": len(results) == folds, "clips": int(sum(r["int8"]["n"] for r in results))}
    for variant in ("float32", "int8"):
        for metric in ("accuracy", "uar"):
            mean, sd = mean_sd([r[variant][metric] for r in results])
            summary[f"{variant}_{metric}_mean"] = round(mean, 4)
            summary[f"{variant}_{metric}_sd"] = round(sd, 4)
    summary["per_fold"] = [{"fold": r["fold"], "test_actors": r["test_actors"],
                            **{f"{v}_{m}": round(r[v][m], 4) for v in ("float32", "int8")
                               for m in ("accuracy", "uar")}} for r in results]
    return summary


def fold_table(results: list[dict], summary: dict) -> list[str]:
    rows = ["| fold | test actors | float32 accuracy | float32 UAR | int8 accuracy | int8 UAR | "
            "int8/float agreement | clips | train min |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        rows.append(f"| {r['fold']} | {actor_list(r['test_actors'])} | {r['float32']['accuracy']:.4f} | "
                    f"{r['float32']['uar']:.4f} | {r['int8']['accuracy']:.4f} | {r['int8']['uar']:.4f} | "
                    f"{r['int8_float_agreement']:.4f} | {r['int8']['n']} | {r['train_minutes']:.1f} |")
    def cell(key: str) -> str:  # no sd from a single fold
        sd = f"{summary[key + '_sd']:.4f}" if len(results) > 1 else "n/a"
        return f"**{summary[key + '_mean']:.4f} ± {sd}**"

    rows.append(f"| **mean ± sd** | {len(results)} of {summary['folds']} folds | "
                + " | ".join(cell(f"{v}_{m}") for v in ("float32", "int8") for m in ("accuracy", "uar"))
                + f" | | {summary['clips']} | |")
    return rows


def write_report(out: Path, config: dict, results: list[dict], summary: dict) -> None:
    selection = ("a fixed number of epochs, the final epoch's model kept; the test actors were the "
                 "training run's validation split only to watch its curve, nothing was selected on them"
                 if config["selection"] == "fixed" else
                 f"early stopping and the best epoch chosen on {config['inner_val']} validation actors "
                 "held out of each fold's training actors (never the test actors)")
    lines = [
        "# Speaker-independent cross-validation (voice)", "",
        f"- recipe: `python -m training.train {shlex.join(config['recipe'])}` per fold",
        f"- command: `{config['command']}`",
        f"- data: {config['data']}, actors {config['actors']} in {config['folds']} folds "
        "(each actor in exactly one test fold; a fold's model never heard its test actors)",
        f"- epochs: {selection}",
        "- int8: the project's converter, calibrated on "
        f"{CALIBRATION_SAMPLES} voiced windows of the fold's training actors",
        "- scores: per clip with the device's code (2 s windows every 0.5 s, VAD-weighted); "
        "UAR = unweighted average recall over the 8 classes; sd is the sample standard deviation "
        "over folds",
        f"- folds finished: {len(results)} of {config['folds']}"
        + ("" if summary["complete"] else " (partial: re-run the command to finish the others)"), "",
        *fold_table(results, summary), "",
    ]
    if results:
        lines += ["Per-class recall (int8, mean over the folds):", "",
                  "| " + " | ".join(results[0]["int8"]["recall"]) + " |",
                  "|" + " --- |" * len(results[0]["int8"]["recall"]),
                  "| " + " | ".join(f"{np.mean([r['int8']['recall'][c] for r in results]):.2f}"
                                    for c in results[0]["int8"]["recall"]) + " |", ""]
        curve = mean_curve(out, results)
        if config["selection"] == "fixed" and len(curve) > 1:
            marks = sorted({*range(0, len(curve), max(1, len(curve) // 9)), len(curve) - 1})
            lines += ["Window accuracy on the test actors by epoch, mean over the folds (watched during "
                      "training, never used to pick a fold's model; the basis for choosing an epoch count "
                      "for a model trained on all actors):", "",
                      "| epoch | " + " | ".join(str(i + 1) for i in marks) + " |",
                      "|" + " --- |" * (len(marks) + 1),
                      "| mean val_accuracy | " + " | ".join(f"{curve[i]:.3f}" for i in marks) + " |", ""]
        lines += ["Per fold: `fold_N/results.json` (scores, confusion matrices, the training command); "
                  "`fold_N/train/` holds the training run (history, curves, report).", ""]
    (out / "report.md").write_text("\n".join(lines))


def mean_curve(out: Path, results: list[dict]) -> list[float]:
    """Per epoch, the mean over the finished folds of their runs' `val_accuracy` (window level)."""
    from training.train import read_history

    curves = [read_history(out / f"fold_{r['fold']}" / "train" / "history.csv").get("val_accuracy", [])
              for r in results]
    length = min((len(c) for c in curves), default=0)
    return [float(np.mean([c[i] for c in curves])) for i in range(length)]


def rerun_argv(argv: list[str]) -> list[str]:
    """The command line without this invocation's piece selection (--only N, --summary)."""
    kept, skip = [], False
    for option in argv:
        if skip:
            skip = False
        elif option == "--only":
            skip = True
        elif option != "--summary" and not option.startswith("--only="):
            kept.append(option)
    return kept


def load_config(out: Path, config: dict) -> None:
    """Refuse to mix folds of two recipes in one folder."""
    path = out / CONFIG
    if path.exists():
        before = json.loads(path.read_text())
        keys = ("recipe", "data", "actors", "folds", "selection", "inner_val", "calibration_seed")
        if any(before.get(k) != config[k] for k in keys):
            differing = [k for k in keys if before.get(k) != config[k]]
            raise DataError(f"{out} holds a cross-validation with other {', '.join(differing)} "
                            f"({path}); use another --out for another recipe")
        return
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=1) + "\n")


def cross_validate(args: argparse.Namespace, recipe: list[str], argv: list[str]) -> dict:
    check_recipe(recipe)
    actors = parse_actors(args.actors)
    clips = find_clips(args.data, actors)
    missing = sorted(set(actors) - {c.name.actor for c in clips})
    if missing:
        raise DataError(f"{args.data}: no clips for actors {missing}")
    splits = fold_splits(actors, args.folds, args.selection, args.inner_val)
    check_splits(splits, actors, args.selection)
    out = Path(args.out)
    config = {"recipe": recipe, "data": args.data, "actors": args.actors, "folds": args.folds,
              "selection": args.selection, "inner_val": args.inner_val,
              "calibration_seed": args.calibration_seed,
              "splits": [{k: list(v) for k, v in s.items()} for s in splits],
              "command": "python -m converters.cross_validation " + shlex.join(rerun_argv(argv))}
    load_config(out, config)
    only = set(parse_actors(args.only)) if args.only else set(range(1, args.folds + 1))
    if args.summary:
        only = set()
    results = []
    for number, split in enumerate(splits, start=1):
        done = out / f"fold_{number}" / RESULTS
        if done.exists():
            print(f"fold {number} (test actors {actor_list(split['test'])}): finished earlier, {done}",
                  flush=True)
            results.append(json.loads(done.read_text()))
        elif number in only:
            print(f"fold {number} of {args.folds}: test actors {actor_list(split['test'])}, "
                  f"training actors {actor_list(split['train'])}", flush=True)
            results.append(run_fold(number, split, args, recipe))
            r = results[-1]
            print(f"fold {number}: float32 accuracy {r['float32']['accuracy']:.4f} "
                  f"UAR {r['float32']['uar']:.4f}, int8 accuracy {r['int8']['accuracy']:.4f} "
                  f"UAR {r['int8']['uar']:.4f}", flush=True)
    summary = summarise(results, args.folds) if results else {"folds_done": [], "folds": args.folds,
                                                              "complete": False}
    if results:
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        write_report(out, config, results, summary)
        print("\n".join(fold_table(results, summary)))
    return summary


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__.splitlines()[0],
        epilog="Every other option is the recipe, passed to python -m training.train for each fold "
               "(e.g. --model voice_cnn --width 1.25 --epochs 45 --batch-size 32 --lr 3e-3).")
    parser.add_argument("--data", required=True, help="RAVDESS folder (Actor_XX/*.flac)")
    parser.add_argument("--out", required=True, help="folder for the folds, report.md and summary.json")
    parser.add_argument("--actors", default="1-20", help="actors to cross-validate over")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--selection", choices=("fixed", "inner"), default="fixed",
                        help="fixed: the final epoch of a fixed schedule; inner: the best epoch on "
                        "--inner-val actors held out of each fold's training actors")
    parser.add_argument("--inner-val", type=int, default=4, help="validation actors with --selection inner")
    parser.add_argument("--only", help="run only these folds now (e.g. 1-2); finished folds are always kept")
    parser.add_argument("--summary", action="store_true",
                        help="train nothing: the table and report of the folds finished so far")
    parser.add_argument("--calibration-seed", type=int, default=0, help="int8 calibration sample")
    return parser.parse_known_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, recipe = parse_args(argv)
    try:
        summary = cross_validate(args, recipe, argv)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
