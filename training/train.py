"""The one training entry point: `python -m training.train --model NAME --data PATH`.

Runs resume by default: every epoch saves `last.keras` (weights and optimizer state) and
`state.json`, so a killed run continues where it stopped when the same command is run again.
The best epoch on the validation split is kept as `best.keras`, and the run ends by writing the
report files (history, curves, confusion matrix, per-class table) into the output directory.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf

from device.errors import ModelLoadError
from training.architectures import BUILDERS
from training.data_errors import DataError
from training.face_task import face_task
from training.metrics import classification_report
from training.reports import write_reports
from training.task import Task
from training.tflite_teacher import TFLiteTeacher

FACE_MODELS = {"mini_xception", "ds_cnn", "vgg_teacher"}


def build_task(args: argparse.Namespace) -> Task:
    if args.model == "face_gate":
        from training.face_gate_task import face_gate_task

        return face_gate_task(args.data, args.train_usage, args.val_usage, args.seed)
    if args.model in FACE_MODELS:
        for option, value in (("--babble", args.babble), ("--speaker-warp", args.speaker_warp)):
            if value:
                raise DataError(f"{option} applies to the voice model, not {args.model}")
        if args.camera_framing and not args.camera_crops:
            raise DataError("--camera-framing frames the camera crops: give --camera-crops SHARE too")
        return face_task(args.data, args.train_usage, args.val_usage, args.val_data, args.teacher_shift,
                         args.augment_strength, args.camera_crops, args.camera_framing, args.mixup)
    for option, value, default in (("--teacher-shift", args.teacher_shift, 0),
                                   ("--augment-strength", args.augment_strength, 1.0),
                                   ("--camera-crops", args.camera_crops, 0.0),
                                   ("--camera-framing", args.camera_framing, 0.0)):
        if value != default:
            raise DataError(f"{option} applies to the face models, not {args.model}")
    from training.voice_task import voice_task

    return voice_task(args.data, args.train_actors, args.val_actors, args.seed, args.babble,
                      args.babble_snr, args.mixup, args.speaker_warp, watch_only=args.keep == "last")


def class_weights(labels: np.ndarray, num_classes: int, power: float) -> np.ndarray:
    """Inverse-frequency weights tempered by `power` (0 = none, 1 = fully balanced).

    Full balancing lifts rare classes (disgust) at a large cost in overall accuracy;
    a square root is the usual compromise.
    """
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = (len(labels) / (num_classes * np.maximum(counts, 1))) ** power
    return (weights / np.average(weights, weights=counts)).astype(np.float32)


class EpochProgress(keras.callbacks.Callback):
    """One line per epoch with the whole run's ETA, readable in a nohup log."""

    def __init__(self, total_epochs: int) -> None:
        super().__init__()
        self.total = total_epochs
        self.started = time.monotonic()
        self.first_epoch: int | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self.first_epoch is None:
            self.first_epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        done = epoch + 1 - (self.first_epoch or 0)
        elapsed = time.monotonic() - self.started
        eta = elapsed / done * (self.total - epoch - 1)
        shown = " ".join(f"{k}={v:.4f}" for k, v in (logs or {}).items() if k != "learning_rate")
        print(f"epoch {epoch + 1}/{self.total} {shown} "
              f"[{elapsed / 60:.1f} min elapsed, ETA {eta / 60:.1f} min]", flush=True)


def recalibrate_batch_norm(model: keras.Model, samples: np.ndarray, batch_size: int = 256) -> None:
    """Replace every batch norm's running statistics by their plain average over `samples`.

    Training leaves statistics of augmented inputs (warped, re-lit faces; masked, noisy
    spectrograms) and, with weight averaging, of the raw weights rather than the averaged ones
    that are kept; the model then meets clean inputs. Switched on mid-run for the shipped
    mini-Xception, it lifted PublicTest validation from 63.2-64.0% to 64.6-64.8%
    (docs/face.md). Equal batches, so each counts the same in the average."""
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    batch_size = min(batch_size, len(samples))
    for step, start in enumerate(range(0, len(samples) - batch_size + 1, batch_size)):
        for layer in norms:
            layer.momentum = step / (step + 1)  # running average = mean of the batches so far
        model(samples[start:start + batch_size], training=True)
    for layer, momentum in zip(norms, momenta, strict=True):
        layer.momentum = momentum


def recalibration_samples(task: Task, args: argparse.Namespace) -> np.ndarray:
    """The fixed un-augmented training inputs whose statistics the kept model's batch norms hold."""
    picked = np.random.default_rng(args.seed).permutation(len(task.y_train))[:args.bn_recalibration]
    return task.clean(task.x_train[np.sort(picked)])


def kept_model(model: keras.Model, task: Task, args: argparse.Namespace) -> keras.Model:
    """From `last.keras` (raw weights, and with --ema their averages in the optimizer) to the
    model an epoch's end validates and keeps: averages swapped in, batch norms re-estimated.
    A finished run then needs only `last.keras` carried between machines, not `best.keras` too."""
    if model.optimizer is not None and model.optimizer.use_ema:
        model.optimizer.finalize_variable_values(model.trainable_variables)
    if args.bn_recalibration:
        recalibrate_batch_norm(model, recalibration_samples(task, args))
    return model


class BatchNormRecalibration(keras.callbacks.Callback):
    """Before each validation, re-estimate the batch-norm statistics of the weights about to be
    validated (the averaged ones with --ema) on a fixed sample of un-augmented training inputs,
    so the epoch is chosen, and `best.keras` kept, as the model will be used."""

    def __init__(self, samples: np.ndarray) -> None:
        super().__init__()
        self.samples = samples

    def on_test_begin(self, logs: dict | None = None) -> None:
        recalibrate_batch_norm(self.model, self.samples)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that remembers the best epoch and patience used across a resume."""

    def __init__(self, history: dict[str, list[float]], **kwargs) -> None:
        super().__init__(**kwargs)
        self._past = history.get(self.monitor, [])

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        if self._past:
            best_index = int(np.argmax(self._past))
            self.best = self._past[best_index]
            self.wait = len(self._past) - 1 - best_index


def read_history(path: Path) -> dict[str, list[float]]:
    if not path.exists():
        return {}
    history: dict[str, list[float]] = {}
    with path.open() as fh:
        for row in csv.DictReader(fh):
            for key, value in row.items():
                if key != "epoch":
                    history.setdefault(key, []).append(float(value))
    return history


def previous_training(checkpoint: Path, recorded: dict | None = None) -> dict:
    """What produced a checkpoint a run starts from, so a model card can say how to rebuild it:
    the `<name>.training.json` beside a shipped checkpoint, or the run directory's
    `training.json`. When neither is on this machine (a run carried over without the runs it
    grew from), the run's own earlier record of that checkpoint, `recorded`, stands: running the
    command again never thins a model card's lineage."""
    for info in (checkpoint.with_suffix(".training.json"), checkpoint.parent / "training.json"):
        if info.exists():
            return {"checkpoint": str(checkpoint), **json.loads(info.read_text())}
    if recorded and recorded.get("checkpoint") == str(checkpoint):
        return recorded
    return {"checkpoint": str(checkpoint)}


def training_targets(task: Task, num_classes: int, teachers: list[str], teacher_weight: float,
                     cache: Path | None = None, views: str = "") -> np.ndarray:
    """One-hot labels, or with teachers (knowledge distillation) a blend of the labels and the
    teachers' averaged probabilities on the un-augmented training samples. The soft part tells
    a small student which mistakes are near misses (fear vs. sad), which it learns more easily
    than hard labels alone; the hard part keeps it right where the teachers are wrong.

    Scoring a large teacher's views of every training face takes half an hour on two cores, and a
    long run restarts once a session, so the teachers' probabilities are kept in `cache` and used
    again while the teachers' files, the samples and the `views` are the same."""
    onehot = np.eye(num_classes, dtype=np.float32)[task.y_train]
    if not teachers:
        return onehot
    inputs = task.clean(task.x_train)
    key = json.dumps({"teachers": [[path, file_digest(path)] for path in teachers], "views": views,
                      "samples": hashlib.sha256(inputs.tobytes() + task.y_train.tobytes()).hexdigest()})
    if cache is not None and cache.is_file():
        with np.load(cache) as kept:
            if str(kept["key"]) == key:
                print(f"teachers' probabilities from {cache} (same teachers, samples and views)", flush=True)
                return ((1.0 - teacher_weight) * onehot + teacher_weight * kept["soft"]).astype(np.float32)
    soft = np.zeros_like(onehot)
    for path in teachers:
        soft += task.predict(fitting_teacher(path, inputs.shape[1:], num_classes), inputs)
        print(f"teacher {path}: {np.mean(soft.argmax(axis=1) == task.y_train):.4f} training accuracy "
              "(running ensemble)", flush=True)
    soft /= len(teachers)
    if cache is not None:
        np.savez(cache, soft=soft, key=np.array(key))
    return ((1.0 - teacher_weight) * onehot + teacher_weight * soft).astype(np.float32)


def fitting_teacher(path: str, sample_shape: tuple[int, ...],
                    num_classes: int) -> keras.Model | TFLiteTeacher:
    teacher = load_teacher(path)
    if teacher.input_shape[1:] != sample_shape or teacher.output_shape[-1] != num_classes:
        raise DataError(f"{path}: the teacher maps {teacher.input_shape[1:]} to "
                        f"{teacher.output_shape[-1]} classes; this task needs "
                        f"{sample_shape} to {num_classes}")
    return teacher


def consistent_teaching(task: Task, num_classes: int, teachers: list[str],
                        teacher_weight: float) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tuple]:
    """A map for the input pipeline that blends each augmented batch's labels with the teachers'
    probabilities on that same batch, scored as the student sees it, in the task's own views
    (faces: with the mirror image).

    Targets scored once on a few fixed views (`training_targets`) tell the student what the teacher
    thinks of a clean face while it looks at a warped, re-lit one: on FER2013 the students stalled
    1-2 points under their teachers whatever the views. Matching the teacher's function on the very
    inputs the student is trained on ("consistent" distillation, Beyer et al. 2022, "Knowledge
    distillation: a good teacher is patient and consistent") removes that mismatch; an int8 face
    teacher costs about 0.5 ms a face here, a fraction of a training step."""
    models = [fitting_teacher(path, task.x_train.shape[1:], num_classes) for path in teachers]

    def soft(batch: np.ndarray) -> np.ndarray:
        return (sum(task.predict(model, batch) for model in models) / len(models)).astype(np.float32)

    def blend(x: tf.Tensor, y: tf.Tensor, w: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        # stateful: otherwise tf.data's optimizer runs the map in parallel, and one TFLite
        # interpreter must not be invoked from two threads at once
        scored = tf.numpy_function(soft, [x], tf.float32, stateful=True)
        scored.set_shape(y.shape)
        return x, (1.0 - teacher_weight) * y + teacher_weight * scored, w

    return blend


def file_digest(path: str) -> str:
    """sha256 of a teacher's file, so that a cache never outlives a retrained teacher (a missing
    file matches no cache, and loading it says what is wrong)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if Path(path).is_file() else "missing"


def load_teacher(path: str) -> keras.Model | TFLiteTeacher:
    """A .keras checkpoint, or an int8 .tflite (how the face teacher is committed)."""
    if not path.endswith(".tflite"):
        return load_checkpoint(path, "--teacher")
    if not Path(path).is_file():
        raise DataError(f"--teacher {path}: no such file")
    try:
        return TFLiteTeacher(Path(path))
    except ModelLoadError as exc:
        raise DataError(f"--teacher {exc}") from None


def load_checkpoint(path: str, option: str) -> keras.Model:
    if not Path(path).is_file():
        raise DataError(f"{option} {path}: no such file; give a .keras checkpoint "
                        "(e.g. runs/<name>/best.keras)")
    try:
        return keras.models.load_model(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{option} {path}: not a readable Keras checkpoint ({exc})") from None


def build_model(args: argparse.Namespace, num_classes: int) -> keras.Model:
    options = {"width": args.width}
    if args.extra_blocks:
        if args.model != "mini_xception":
            raise DataError(f"--extra-blocks applies to mini_xception, not {args.model}")
        options["extra_blocks"] = args.extra_blocks
    if args.pooling != "average":
        if args.model != "voice_cnn":
            raise DataError(f"--pooling applies to voice_cnn, not {args.model}")
        options["pooling"] = args.pooling
    if args.band_norm != "none":
        if args.model != "voice_cnn":
            raise DataError(f"--band-norm applies to voice_cnn, not {args.model}")
        options["band_norm"] = args.band_norm
    return BUILDERS[args.model](num_classes=num_classes, **options)


def copy_weights(source: keras.Model, target: keras.Model, source_path: str) -> None:
    """A warm restart: start from trained weights with a fresh schedule, to extend training
    without re-running the epochs a checkpoint already holds. Layers are matched by name, so the
    target may be the source grown by zero-initialised identity modules (`--extra-blocks`)."""
    for layer in source.layers:
        try:
            grown = target.get_layer(layer.name)
        except ValueError:
            raise DataError(f"{source_path}: layer {layer.name!r} has no counterpart in the new "
                            f"{target.name}; --init-from needs the same architecture and width") from None
        weights = layer.get_weights()
        if [w.shape for w in weights] != [w.shape for w in grown.get_weights()]:
            raise DataError(f"{source_path}: layer {layer.name!r} has other shapes than in the new "
                            f"{target.name}; --init-from needs the same architecture and width")
        grown.set_weights(weights)


def piece_seed(seed: int, initial_epoch: int) -> int:
    """The random stream of a run's piece that starts after `initial_epoch` epochs.

    Seeding every piece with `--seed` alone restarted, after each resume, the random streams where
    the run's first epoch had begun (the shuffle's order of the first epoch, and the augmentation
    ops' draws): every piece replayed the batches of the first, so the face teacher's training
    accuracy rose by 1.2-2.8 points on the first epoch of each later piece, against 0.3-0.8 between
    other epochs, up to 80.0% at epoch 44, and fell back to 72.9% on the first epoch drawn afresh
    (its validation accuracy moved by 0.1-0.3 throughout): a run trained in pieces saw less variety
    than one trained at once. Each piece now draws from a seed of its own (the same shuffle order
    on every machine); a fresh run keeps `seed`."""
    return seed if initial_epoch == 0 else seed + 1_000_003 * initial_epoch


def make_dataset(task: Task, targets: np.ndarray, batch_size: int, seed: int, num_classes: int,
                 weight_power: float, teach: Callable | None = None) -> tf.data.Dataset:
    weights = class_weights(task.y_train, num_classes, weight_power)[task.y_train]
    ds = tf.data.Dataset.from_tensor_slices((task.x_train, targets, weights))
    # Full batches only: oneDNN's CPU kernels here crash (heap corruption) on a training step whose
    # batch has an odd size such as 37; reshuffling every epoch still shows every sample.
    batch_size = min(batch_size, len(task.y_train))
    ds = ds.shuffle(len(task.y_train), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(lambda x, y, w: (task.augment(x), y, w), num_parallel_calls=tf.data.AUTOTUNE)
    if task.mix is not None:
        ds = ds.map(task.mix, num_parallel_calls=tf.data.AUTOTUNE)
    if teach is not None:
        ds = ds.map(teach)
    return ds.prefetch(tf.data.AUTOTUNE)


def compile_model(model: keras.Model, args: argparse.Namespace, steps_per_epoch: int) -> None:
    warmup = max(1, args.warmup_epochs * steps_per_epoch)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=args.lr / 100, decay_steps=max(1, args.epochs * steps_per_epoch - warmup),
        alpha=0.01, warmup_target=args.lr, warmup_steps=warmup)
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=schedule, weight_decay=args.weight_decay,
                                         use_ema=args.ema > 0, ema_momentum=args.ema or 0.99),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing),
        metrics=["accuracy"],
    )


def train(args: argparse.Namespace, argv: list[str]) -> dict:
    if args.consistent_teacher and not args.teacher:
        raise DataError("--consistent-teacher says how teachers score the faces: give --teacher MODEL too")
    if args.consistent_teacher and args.teacher_shift:
        raise DataError("--teacher-shift is for teachers scored once on fixed views; a consistent teacher "
                        "scores each augmented batch (already moved) and its mirror: drop one of the two")
    out = Path(args.out or f"runs/{args.model}")
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    task = build_task(args)
    if args.max_train_samples:
        cap = args.max_train_samples
        task.x_train, task.y_train = task.x_train[:cap], task.y_train[:cap]
    num_classes = len(task.labels)
    steps = max(1, len(task.y_train) // args.batch_size)
    state_path, last_path, best_path = out / "state.json", out / "last.keras", out / "best.keras"
    log_path = out / "history.csv"
    initial_epoch = 0
    if args.fresh:
        for stale in (state_path, last_path, best_path, log_path):
            stale.unlink(missing_ok=True)
    if state_path.exists() and last_path.exists():
        state = json.loads(state_path.read_text())
        initial_epoch = int(state["epoch"])
        planned = state.get("args", {}).get("epochs", args.epochs)
        if planned != args.epochs:
            # The checkpoint's optimizer carries a learning-rate schedule built for `planned`
            # epochs; resuming under another --epochs would silently train at its final rate.
            raise DataError(f"{out} holds a run planned for {planned} epochs, not {args.epochs}: "
                            f"resume with --epochs {planned}, or extend a finished run with "
                            f"--init-from {best_path} --out <new dir> (a fresh schedule)")
        model = keras.models.load_model(last_path)
        print(f"resuming {args.model} from {last_path} after epoch {initial_epoch}", flush=True)
    else:
        model = build_model(args, num_classes)
        if args.init_from:
            copy_weights(load_checkpoint(args.init_from, "--init-from"), model, args.init_from)
            print(f"initialised {args.model} from {args.init_from}", flush=True)
        compile_model(model, args, steps)
    print(f"{args.model}: {model.count_params():,} parameters, {len(task.y_train)} training and "
          f"{len(task.y_val)} validation samples, {args.epochs} epochs", flush=True)
    history = read_history(log_path)

    class SaveState(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            model.save(last_path)
            state_path.write_text(json.dumps({"epoch": epoch + 1, "args": vars(args)}))

    # Order matters: `last.keras` is saved with the raw weights and the optimizer's averages (so a
    # resume continues both); then, with --ema, the averaged weights are swapped in, their batch
    # norms re-estimated (--bn-recalibration), and it is that model which is validated and kept
    # as `best.keras`.
    as_used = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if model.optimizer.use_ema else []
    if args.bn_recalibration:
        as_used.append(BatchNormRecalibration(recalibration_samples(task, args)))
    callbacks = [
        keras.callbacks.CSVLogger(str(log_path), append=True),
        SaveState(),
        *as_used,
        keras.callbacks.ModelCheckpoint(str(best_path), monitor="val_accuracy", mode="max",
                                        save_best_only=args.keep == "best",
                                        initial_value_threshold=max(history.get("val_accuracy", [0.0]))),
        EpochProgress(args.epochs),
    ]
    if args.keep == "best":
        callbacks.append(ResumableEarlyStopping(history, monitor="val_accuracy", mode="max",
                                                patience=args.patience))
    last_epoch = min(args.epochs, args.stop_after or args.epochs)
    if initial_epoch < last_epoch:
        stream = piece_seed(args.seed, initial_epoch)
        if initial_epoch:  # a fresh run goes on from the seeding above, as it always did
            keras.utils.set_random_seed(stream)
        if args.consistent_teacher:
            targets = training_targets(task, num_classes, [], 0.0)
            teach = consistent_teaching(task, num_classes, args.teacher, args.teacher_weight)
        else:
            targets = training_targets(task, num_classes, args.teacher, args.teacher_weight,
                                       out / "teacher_targets.npz", f"shift {args.teacher_shift}")
            teach = None
        model.fit(
            make_dataset(task, targets, args.batch_size, stream, num_classes, args.class_weight_power, teach),
            validation_data=(task.x_val, np.eye(num_classes, dtype=np.float32)[task.y_val]),
            validation_batch_size=256, epochs=last_epoch, initial_epoch=initial_epoch,
            callbacks=callbacks, shuffle=False, verbose=1 if sys.stdout.isatty() else 0,
        )
    if best_path.exists():
        best = keras.models.load_model(best_path)
    elif initial_epoch >= last_epoch:
        best = kept_model(model, task, args)
        best.save(best_path)
        which = ("its last epoch" if args.keep == "last"
                 else "its last epoch, not its best (lost with best.keras)")
        print(f"{best_path} rebuilt from {last_path}: {which}, weights averaged and batch norms "
              "re-estimated as training keeps them", flush=True)
    else:
        best = model
    y_true, probs = task.evaluate(best)
    report = classification_report(y_true, probs, task.labels)
    extra = {"model": args.model, "parameters": int(best.count_params()), **task.description,
             **(task.extras(best) if task.extras else {})}
    final_history = read_history(log_path)
    write_reports(out, final_history, report, f"{args.model} on the validation split", extra)
    val_curve = final_history.get("val_accuracy", [0.0])
    info = {
        "data": task.description,
        "command": "python -m training.train " + shlex.join(argv),
        "epochs_run": len(val_curve),
        "best_epoch": int(np.argmax(val_curve)) + 1,
        "seed": args.seed,
        "note": "best epoch selected on the validation split (early stopping)",
    }
    if args.keep == "last":
        info["kept_epoch"] = len(val_curve)
        info["note"] = ("fixed schedule: the final epoch's model is kept (best.keras); the validation "
                        "split was only watched, nothing was selected on it")
    info_path = out / "training.json"
    recorded = json.loads(info_path.read_text()) if info_path.exists() else {}
    if args.init_from:
        info["continued_from"] = previous_training(Path(args.init_from), recorded.get("continued_from"))
    if args.teacher:
        kept = recorded.get("teachers", [])
        info["teachers"] = [previous_training(Path(path), kept[i] if i < len(kept) else None)
                            for i, path in enumerate(args.teacher)]
    info_path.write_text(json.dumps(info, indent=1) + "\n")
    print(json.dumps({"accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
                      "top3": report["top3"], "uar": report["uar"], "n": report["n"], **extra}))
    return report


def _four_counts(value: str) -> tuple[int, int, int, int]:
    try:
        counts = tuple(int(v) for v in value.split(","))
    except ValueError:
        counts = ()
    if len(counts) != 4 or min(counts) < 0:
        raise argparse.ArgumentTypeError(f"{value!r}: expected four counts such as 0,1,0,0")
    return counts  # type: ignore[return-value]


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a whole number of 1 or more")
    return int(value)


def _samples(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r}: expected a whole number of samples (0 = off)")
    return int(value)


def _pixels(value: str) -> int:
    if not value.isdigit() or int(value) > 8:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a whole number of pixels from 0 to 8")
    return int(value)


def _number(valid: Callable[[float], bool], expected: str) -> Callable[[str], float]:
    """An argparse type for a float option: `valid` decides, `expected` says what would be right."""
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not valid(number):
            raise argparse.ArgumentTypeError(f"{value!r}: expected {expected}")
        return number

    return parse


_momentum = _number(lambda m: m == 0.0 or 0.9 <= m < 1.0,
                    "0 (off) or a momentum from 0.9 to below 1, such as 0.999")
_spread = _number(lambda s: 0.0 <= s <= 0.5, "a log-normal spread between 0 and 0.5 (e.g. 0.14)")
_share = _number(lambda s: 0.0 <= s <= 1.0, "a share between 0 and 1")
_alpha = _number(lambda a: a >= 0, "0 (off) or a Beta parameter such as 0.2")


def _snr_range(value: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value.split(","))
    except ValueError:
        low, high = 1.0, 0.0
    if not low <= high:
        raise argparse.ArgumentTypeError(f"{value!r}: expected LOW,HIGH in dB such as 5,30")
    return low, high


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=list(BUILDERS), required=True)
    parser.add_argument("--data", required=True,
                        help="FER2013 CSV[.gz] or image folder; RAVDESS folder for voice")
    parser.add_argument("--val-data", help="separate validation data (default: --data)")
    parser.add_argument("--train-usage", default="Training")
    parser.add_argument("--val-usage", default="PublicTest")
    parser.add_argument("--train-actors", default="1-16", help="voice: RAVDESS actors to train on")
    parser.add_argument("--val-actors", default="17-20", help="voice: RAVDESS actors to validate on")
    parser.add_argument("--out", help="run directory (default runs/<model>)")
    parser.add_argument("--epochs", type=_positive, default=60)
    parser.add_argument("--batch-size", type=_positive, default=64)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (after warm-up)")
    parser.add_argument("--warmup-epochs", type=int, default=2)
    parser.add_argument("--weight-decay", type=float, default=1e-3)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--class-weight-power", type=float, default=0.5)
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier")
    parser.add_argument("--patience", type=_positive, default=20, help="early-stopping patience (epochs)")
    parser.add_argument("--keep", choices=("best", "last"), default="best",
                        help="best: the epoch with the highest validation accuracy, with early stopping; "
                        "last: the final epoch of the fixed schedule, validation only watched (for "
                        "cross-validation, where the validation speakers are the test speakers)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-train-samples", type=int, default=0, help="cap for smoke runs")
    parser.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    parser.add_argument("--stop-after", type=_positive, metavar="EPOCH",
                        help="end this invocation after this epoch, on the schedule of --epochs; "
                        "run again without it to resume (training in time-boxed pieces)")
    parser.add_argument("--init-from", help="start from this .keras model's weights (same architecture, "
                        "or the same grown by --extra-blocks)")
    parser.add_argument("--extra-blocks", type=_four_counts, default=None, metavar="A,B,C,D",
                        help="mini_xception: identity modules after each of the four modules")
    parser.add_argument("--teacher", action="append", default=[], metavar="MODEL",
                        help="distil from this trained model, .keras or int8 .tflite (repeat: an ensemble)")
    parser.add_argument("--teacher-weight", type=_share, default=0.5,
                        help="share of the teachers' probabilities in the training targets")
    parser.add_argument("--teacher-shift", type=_pixels, default=0, metavar="PIXELS",
                        help="faces: teachers also score each face moved this many pixels left, right, "
                        "up and down (10 views with the mirror images; 0 = face and mirror only)")
    parser.add_argument("--consistent-teacher", action="store_true",
                        help="the teachers score every training batch as augmented, the same view the "
                        "student sees, and its mirror image, instead of fixed views once before training")
    parser.add_argument("--bn-recalibration", type=_samples, default=0, metavar="SAMPLES",
                        help="before each validation, re-estimate batch-norm statistics on this many "
                        "un-augmented training samples (e.g. 10240); 0 = off")
    parser.add_argument("--augment-strength", type=_share, default=1.0, metavar="SHARE",
                        help="faces: scale of every augmentation range (1 = full, 0 = mirror images only)")
    parser.add_argument("--camera-crops", type=_share, default=0.0, metavar="SHARE",
                        help="faces: share of training faces seen as the daemon crops them from a camera "
                        "(foreign border, sensor noise, blur, equalized after); 0 = off")
    parser.add_argument("--camera-framing", type=_spread, default=0.0, metavar="SPREAD",
                        help="faces: camera crops framed as the detector frames them, the side of its square "
                        "over FER2013's log-normal with this spread (measured: 0.14) instead of the uniform "
                        "zoom; needs --camera-crops; 0 = off")
    parser.add_argument("--ema", type=_momentum, default=0.0, metavar="MOMENTUM",
                        help="validate and keep an exponential moving average of the weights "
                        "(e.g. 0.999: about the last 1000 steps); 0 = off")
    parser.add_argument("--babble", type=_share, default=0.0, metavar="SHARE",
                        help="voice: share of training samples with 1-3 other clips of the batch mixed "
                        "in underneath at a random SNR (--babble-snr); 0 = off (the shipped recipe)")
    parser.add_argument("--babble-snr", type=_snr_range, default=(5.0, 30.0), metavar="LOW,HIGH",
                        help="voice: SNR range of --babble in dB")
    parser.add_argument("--mixup", type=_alpha, default=0.0, metavar="ALPHA",
                        help="mixup of inputs and targets within a batch, lam ~ Beta(ALPHA, ALPHA) (faces: "
                        "with --consistent-teacher the teachers score the blends); 0 = off")
    parser.add_argument("--pooling", choices=("average", "attention"), default="average",
                        help="voice: how the time steps are pooled, plain average or learned attention "
                        "weights (voice_cnn only)")
    parser.add_argument("--band-norm", choices=("none", "window-mean"), default="none",
                        help="voice: 'window-mean' subtracts each mel band's mean over the window inside "
                        "the model and keeps the overall level (per-utterance normalisation; voice_cnn only)")
    parser.add_argument("--speaker-warp", type=_share, default=0.0, metavar="SHARE",
                        help="voice: share of training samples with the mel bands scaled by up to +-10%% "
                        "(another vocal tract) and the time axis by up to +-15%% (another speaking rate); "
                        "0 = off")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        train(args, argv)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
