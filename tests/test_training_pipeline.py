"""Train → report → quantize → evaluate, end to end on a tiny synthetic FER2013 CSV."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
pytest.importorskip("tensorflow")

from converters import quantize
from tests.synthetic_faces import write_fer_csv
from training import train

REPO = Path(__file__).resolve().parents[1]
REPORT_FILES = ("history.json", "curves.png", "confusion_matrix.png", "report.json", "report.md")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("run")
    data = write_fer_csv(root / "fer.csv.gz", train_per_class=12, test_per_class=4)
    out = root / "run"
    common = ["--model", "mini_xception", "--width", "0.5", "--data", str(data), "--out", str(out),
              "--batch-size", "32", "--lr", "5e-3", "--warmup-epochs", "1"]
    assert train.main([*common, "--epochs", "2", "--stop-after", "1"]) == 0
    assert json.loads((out / "training.json").read_text())["epochs_run"] == 1
    assert train.main([*common, "--epochs", "3"]) == 2  # another schedule: refused, nothing lost
    assert train.main([*common, "--epochs", "2"]) == 0  # resumes after epoch 1
    return data, out


@pytest.mark.slow
def test_training_writes_every_report_file_and_resumes(trained_run: tuple[Path, Path]) -> None:
    _, out = trained_run
    for name in REPORT_FILES:
        assert (out / name).stat().st_size > 0, name
    history = json.loads((out / "history.json").read_text())
    assert len(history["val_accuracy"]) == 2  # one epoch, then one more after the resume
    report = json.loads((out / "report.json").read_text())
    assert report["n"] == 28 and len(report["per_class"]) == 7
    assert 0.0 <= report["accuracy"] <= 1.0 and report["top3"] >= report["accuracy"]
    assert json.loads((out / "state.json").read_text())["epoch"] == 2
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_quantize_then_make_evaluate_prints_json(trained_run: tuple[Path, Path], tmp_path: Path) -> None:
    data, out = trained_run
    code = quantize.main(["--keras", str(out / "best.keras"), "--data", str(data), "--name", "tiny",
                          "--out-dir", str(tmp_path), "--calibration", "70", "--max-drop", "100"])
    assert code == 0
    card = json.loads((tmp_path / "tiny_int8.json").read_text())
    assert card["input"]["dtype"] == "int8" and card["labels"][3] == "happy"
    assert set(card["metrics"]["results"]) == {"float32", "int8", "int8_flip"}
    assert card["latency_single_thread_ms"]["median_ms"] > 0
    result = subprocess.run(
        ["make", "-s", "evaluate", f"MODEL={tmp_path / 'tiny_int8.tflite'}", f"DATA={data}",
         "USAGE=PublicTest"],
        capture_output=True, text=True, cwd=REPO, check=True)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["n"] == 28
    assert summary["accuracy"] == pytest.approx(card["metrics"]["results"]["int8"]["accuracy"])
    assert {"accuracy", "macro_f1", "top3"} <= set(summary)

    # The int8 file as a distillation teacher (how the face teacher is committed): batched scoring
    # gives what the device's own classifier gives face by face, and a broken file is one message.
    import numpy as np

    from device.vision.face_classifier import FaceClassifier
    from device.vision.preprocessing import equalize_batch
    from training.data_errors import DataError

    faces = np.random.default_rng(4).integers(0, 256, (37, 48, 48), dtype=np.uint8)
    teacher = train.load_teacher(str(tmp_path / "tiny_int8.tflite"))
    assert teacher.input_shape == (None, 48, 48, 1) and teacher.output_shape == (None, 7)
    batched = teacher.predict(equalize_batch(faces)[..., None].astype(np.float32), batch_size=16)
    device = FaceClassifier(tmp_path / "tiny_int8.tflite", num_threads=1, flip_tta=False)
    np.testing.assert_allclose(batched, np.stack([device.classify(f) for f in faces]), atol=1e-6)
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a model")
    with pytest.raises(DataError, match=r"teacher model .*broken\.tflite is not a valid TFLite model"):
        train.load_teacher(str(broken))


@pytest.mark.slow
def test_warm_restart_records_the_run_it_continues(trained_run: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    data, out = trained_run
    source = tmp_path / "source"
    source.mkdir()
    for name in ("best.keras", "training.json"):
        shutil.copy(out / name, source / name)
    command = ["--model", "mini_xception", "--width", "0.5", "--data", str(data),
               "--out", str(tmp_path / "continued"), "--batch-size", "32", "--epochs", "1",
               "--init-from", str(source / "best.keras")]
    assert train.main(command) == 0
    info = json.loads((tmp_path / "continued" / "training.json").read_text())
    previous = info["continued_from"]
    assert "teachers" not in info
    assert previous["checkpoint"] == str(source / "best.keras")
    assert previous["command"].endswith("--epochs 2") and previous["epochs_run"] == 2
    # On a machine without the run it grew from, the same command keeps the lineage it recorded.
    (source / "training.json").unlink()
    assert train.main(command) == 0
    again = json.loads((tmp_path / "continued" / "training.json").read_text())["continued_from"]
    assert again == previous


@pytest.mark.slow
def test_each_resumed_piece_draws_batches_of_its_own(tmp_path: Path, monkeypatch) -> None:
    import shutil

    import numpy as np

    data = write_fer_csv(tmp_path / "fer.csv.gz", train_per_class=4, test_per_class=1)
    first_batches: list[tuple[np.ndarray, np.ndarray]] = []
    original = train.make_dataset

    def recording(*args, **kwargs):
        dataset = original(*args, **kwargs)
        x, targets, _ = next(iter(dataset))
        first_batches.append((targets.numpy().argmax(axis=1), x.numpy()))
        return dataset

    monkeypatch.setattr(train, "make_dataset", recording)

    def piece(out: Path, stop_after: int) -> None:
        assert train.main(["--model", "ds_cnn", "--data", str(data), "--out", str(out), "--batch-size", "8",
                           "--epochs", "3", "--stop-after", str(stop_after)]) == 0

    piece(tmp_path / "run", 1)
    shutil.copytree(tmp_path / "run", tmp_path / "again")
    piece(tmp_path / "run", 2)
    piece(tmp_path / "again", 2)
    (labels_1, faces_1), (labels_2, faces_2), (labels_again, _) = first_batches
    # a resume used to start the shuffle and the augmentation where the run's first epoch began
    assert not np.array_equal(labels_1, labels_2) and not np.allclose(faces_1, faces_2)
    # and each piece's order is still fixed: the same resume shuffles the same way (the augmentation
    # draws of a parallel input pipeline are not ordered, so only the order is compared)
    np.testing.assert_array_equal(labels_2, labels_again)
    assert train.piece_seed(42, 0) == 42


def test_distillation_targets_blend_labels_with_the_teachers(tmp_path: Path, monkeypatch) -> None:
    import keras
    import numpy as np

    from training.data_errors import DataError
    from training.task import Task

    labels = np.array([0, 3, 6, 3])
    x = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 1)).astype(np.float32)
    task = Task(labels=tuple("abcdefg"), x_train=x, y_train=labels, x_val=x, y_val=labels,
                augment=lambda b: b, evaluate=lambda m: (labels, None))
    teacher_path = tmp_path / "teacher.keras"
    teacher = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(),
                                keras.layers.Dense(7, activation="softmax")])
    teacher.save(teacher_path)
    soft = teacher.predict(x, verbose=0)
    onehot = np.eye(7, dtype=np.float32)[labels]
    np.testing.assert_array_equal(train.training_targets(task, 7, [], 0.5), onehot)
    targets = train.training_targets(task, 7, [str(teacher_path)] * 2, 0.25)
    np.testing.assert_allclose(targets, 0.75 * onehot + 0.25 * soft, rtol=1e-5)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-5)
    cache = tmp_path / "teacher_targets.npz"
    kept = train.training_targets(task, 7, [str(teacher_path)], 0.25, cache, "shift 0")
    np.testing.assert_allclose(kept, targets, rtol=1e-5)
    scored = []
    original_load = train.load_teacher
    monkeypatch.setattr(train, "load_teacher", lambda path: scored.append(path) or original_load(path))
    # the same teacher, samples and views again: from the cache, no teacher scored
    again = train.training_targets(task, 7, [str(teacher_path)], 0.5, cache, "shift 0")
    np.testing.assert_allclose(again, 0.5 * onehot + 0.5 * soft, rtol=1e-5)
    assert scored == []
    train.training_targets(task, 7, [str(teacher_path)], 0.25, cache, "shift 2")  # other views
    assert scored == [str(teacher_path)]
    teacher.layers[-1].set_weights([w + 0.01 for w in teacher.layers[-1].get_weights()])
    teacher.save(teacher_path)  # a retrained teacher
    retrained = train.training_targets(task, 7, [str(teacher_path)], 1.0, cache, "shift 2")
    assert scored == [str(teacher_path)] * 2
    np.testing.assert_allclose(retrained, teacher.predict(x, verbose=0), rtol=1e-5)
    voice_like = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(),
                                   keras.layers.Dense(8, activation="softmax")])
    voice_like.save(tmp_path / "eight.keras")
    with pytest.raises(DataError, match="this task needs"):
        train.training_targets(task, 7, [str(tmp_path / "eight.keras")], 0.5)


def test_a_consistent_teacher_scores_the_batch_as_augmented(tmp_path: Path, monkeypatch) -> None:
    import threading
    import time

    import numpy as np

    from tests.model_factory import build_face_model
    from training.face_task import predict_faces
    from training.task import Task

    rng = np.random.default_rng(4)
    labels = rng.integers(0, 7, 96)
    x = rng.integers(0, 40, (96, 48, 48, 1)).astype(np.float32)  # dark faces, shown bright
    # A known augmentation and mix that change what the teacher says, so scores of the clean faces
    # (the fixed-view targets) cannot pass for scores of what the student is shown.
    task = Task(labels=tuple("abcdefg"), x_train=x, y_train=labels, x_val=x, y_val=labels,
                augment=lambda b: 255.0 - b, mix=lambda b, y, w: (127.5 + b * 0.5, y, w),
                evaluate=lambda m: (labels, None),
                predict=lambda model, faces: predict_faces(model, faces, flip=True))
    path = str(build_face_model(tmp_path, "teacher_int8"))
    teacher, reference = train.load_teacher(path), train.load_teacher(path)  # the pipeline's, the test's
    busy, overlaps = threading.Lock(), []

    class Exclusive:  # the int8 teacher, slowed down so that two calls at once would meet
        input_shape, output_shape = teacher.input_shape, teacher.output_shape

        def predict(self, faces: np.ndarray, **kwargs) -> np.ndarray:
            if not busy.acquire(blocking=False):
                overlaps.append(len(faces))
                busy.acquire()
            try:
                time.sleep(0.005)
                return teacher.predict(faces, **kwargs)
            finally:
                busy.release()

    monkeypatch.setattr(train, "load_teacher", lambda _: Exclusive())
    teach = train.consistent_teaching(task, 7, [path, path], 0.25)
    onehot = np.eye(7, dtype=np.float32)[labels]
    # many batches: tf.data must not score two at once (one TFLite interpreter is not thread-safe)
    ds = train.make_dataset(task, onehot, 4, 0, 7, 0.0, teach)
    seen = 0
    for batch, targets, _ in ds:
        batch, targets = batch.numpy(), targets.numpy()
        index = [int(np.flatnonzero((x == 510.0 - 2 * face).all(axis=(1, 2, 3)))[0]) for face in batch]
        on_augmented = predict_faces(reference, batch, flip=True)
        np.testing.assert_allclose(targets, 0.75 * onehot[index] + 0.25 * on_augmented, atol=1e-5)
        on_clean = predict_faces(reference, x[index], flip=True)
        assert not np.allclose(targets, 0.75 * onehot[index] + 0.25 * on_clean, atol=1e-3)
        seen += len(batch)
    assert seen == 96 and overlaps == []


def test_a_consistent_teacher_needs_a_teacher_and_no_fixed_views(tmp_path: Path, capsys) -> None:
    data = write_fer_csv(tmp_path / "fer.csv.gz", train_per_class=1, test_per_class=1)
    common = ["--model", "ds_cnn", "--data", str(data), "--out", str(tmp_path / "run"),
              "--consistent-teacher"]
    assert train.main(common) == 2
    assert "give --teacher MODEL too" in capsys.readouterr().err
    assert train.main([*common, "--teacher", "t.tflite", "--teacher-shift", "2"]) == 2
    assert "drop one of the two" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_distilled_warm_restart_into_a_grown_model(trained_run: tuple[Path, Path], tmp_path: Path) -> None:
    data, out = trained_run
    code = train.main(["--model", "mini_xception", "--width", "0.5", "--extra-blocks", "0,1,0,0",
                       "--data", str(data), "--out", str(tmp_path / "grown"), "--batch-size", "32",
                       "--epochs", "1", "--init-from", str(out / "best.keras"),
                       "--teacher", str(out / "best.keras"), "--teacher-weight", "0.5"])
    assert code == 0
    report = json.loads((tmp_path / "grown" / "report.json").read_text())
    assert report["parameters"] > json.loads((out / "report.json").read_text())["parameters"]
    info = json.loads((tmp_path / "grown" / "training.json").read_text())
    assert [t["checkpoint"] for t in info["teachers"]] == [str(out / "best.keras")]
    assert info["teachers"][0]["command"].endswith("--epochs 2")
    # the same teacher, consistent: scored on each augmented batch inside the input pipeline
    code = train.main(["--model", "mini_xception", "--width", "0.5", "--data", str(data),
                       "--out", str(tmp_path / "consistent"), "--batch-size", "32", "--epochs", "1",
                       "--init-from", str(out / "best.keras"), "--teacher", str(out / "best.keras"),
                       "--consistent-teacher"])
    assert code == 0 and not (tmp_path / "consistent" / "teacher_targets.npz").exists()


@pytest.mark.slow
def test_weight_averaging_validates_and_keeps_the_averages(trained_run: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    import keras
    import numpy as np

    data, _ = trained_run
    out = tmp_path / "averaged"
    command = ["--model", "mini_xception", "--width", "0.5", "--data", str(data), "--out", str(out),
               "--batch-size", "32", "--epochs", "1", "--ema", "0.9", "--bn-recalibration", "64"]
    assert train.main(command) == 0
    last, best = keras.models.load_model(out / "last.keras"), keras.models.load_model(out / "best.keras")
    # A finished run carried without best.keras: the same command rebuilds it from last.keras alone.
    (out / "best.keras").unlink()
    assert train.main(command) == 0
    rebuilt = keras.models.load_model(out / "best.keras")
    for kept, again in zip(best.weights, rebuilt.weights, strict=True):
        np.testing.assert_allclose(again.numpy(), kept.numpy(), rtol=1e-5, atol=1e-6)
    averages = last.optimizer._model_variables_moving_average
    assert len(averages) == len(last.trainable_weights) == len(best.trainable_weights)
    moved = 0
    for raw, average, kept in zip(last.trainable_weights, averages, best.trainable_weights, strict=True):
        np.testing.assert_allclose(kept.numpy(), average.numpy(), rtol=1e-6, atol=1e-7)
        moved += not np.allclose(raw.numpy(), average.numpy())
    assert moved > 0  # last.keras holds the raw weights, for a resume to continue both
    # best.keras holds the statistics of 64 clean training faces: re-estimating them changes nothing.
    from training.face_task import face_task

    clean = face_task(str(data), "Training", "PublicTest", None).x_train
    picked = np.sort(np.random.default_rng(42).permutation(len(clean))[:64])
    kept = [layer.moving_mean.numpy() for layer in best.layers if "bn" in layer.name]
    train.recalibrate_batch_norm(best, clean[picked])
    again = [layer.moving_mean.numpy() for layer in best.layers if "bn" in layer.name]
    np.testing.assert_allclose(np.concatenate(kept), np.concatenate(again), rtol=1e-4, atol=1e-5)
    train.recalibrate_batch_norm(last, clean[picked[:32]])  # other faces, other statistics
    other = [layer.moving_mean.numpy() for layer in last.layers if "bn" in layer.name]
    assert not np.allclose(np.concatenate(kept), np.concatenate(other), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_voice_recalibrates_and_distils_on_model_sized_windows(tmp_path: Path) -> None:
    from tests.voice_fixtures import write_ravdess_folder

    data = write_ravdess_folder(tmp_path / "ravdess", actors=(1, 2, 3))
    common = ["--model", "voice_cnn", "--width", "0.5", "--data", str(data), "--train-actors", "1-2",
              "--val-actors", "3", "--batch-size", "8", "--epochs", "1", "--bn-recalibration", "16"]
    assert train.main([*common, "--out", str(tmp_path / "first")]) == 0
    teacher = str(tmp_path / "first" / "best.keras")
    assert train.main([*common, "--out", str(tmp_path / "distilled"), "--teacher", teacher]) == 0
    info = json.loads((tmp_path / "distilled" / "training.json").read_text())
    assert [t["checkpoint"] for t in info["teachers"]] == [teacher]


def test_batch_norm_recalibration_averages_clean_batches() -> None:
    import keras
    import numpy as np

    samples = np.random.default_rng(2).normal(3.0, 2.0, (40, 4, 4, 2)).astype(np.float32)
    model = keras.Sequential([keras.Input((4, 4, 2)), keras.layers.BatchNormalization(momentum=0.9)])
    train.recalibrate_batch_norm(model, samples, batch_size=16)  # two full batches; the last 8 unused
    norm = model.layers[0]
    batches = samples[:32].reshape(2, 16 * 16, 2)
    np.testing.assert_allclose(norm.moving_mean.numpy(), batches.mean(axis=1).mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(norm.moving_variance.numpy(), batches.var(axis=1).mean(axis=0), rtol=1e-4)
    assert norm.momentum == 0.9


def test_augmentation_strength_scales_the_warp_and_lighting() -> None:
    import numpy as np

    from training.face_task import augment_faces

    faces = np.random.default_rng(3).integers(0, 256, (64, 48, 48, 1)).astype(np.float32)
    clean = augment_faces(faces, strength=0.0).numpy()
    for face, out in zip(faces, clean, strict=True):  # each face kept as it is or mirrored, nothing else
        assert np.allclose(out, face, atol=1e-3) or np.allclose(out, face[:, ::-1], atol=1e-3)
    mirrored = sum(np.allclose(out, face[:, ::-1], atol=1e-3) and not np.allclose(out, face, atol=1e-3)
                   for face, out in zip(faces, clean, strict=True))
    assert 10 < mirrored < 54
    warped = augment_faces(faces).numpy()
    assert np.mean([np.allclose(out, face, atol=1e-3) for face, out in zip(faces, warped, strict=True)]) < 0.1


def test_teacher_views_average_mirrors_and_shifts() -> None:
    import keras
    import numpy as np

    from training.face_task import predict_faces, shifted_faces

    faces = np.random.default_rng(1).integers(0, 256, (3, 48, 48, 1)).astype(np.float32)
    right = shifted_faces(faces, 2, 0)
    np.testing.assert_array_equal(right[:, :, 2:], faces[:, :, :-2])
    np.testing.assert_array_equal(right[:, :, :2], faces[:, :, 1::-1])  # mirrored border
    up = shifted_faces(faces, 0, -3)
    np.testing.assert_array_equal(up[:, :-3], faces[:, 3:])
    model = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(7, activation="softmax")])
    views = [faces, *(shifted_faces(faces, dx, dy) for dx, dy in ((2, 0), (-2, 0), (0, 2), (0, -2)))]
    views += [view[:, :, ::-1] for view in views]
    expected = np.mean([model.predict(view, verbose=0) for view in views], axis=0)
    np.testing.assert_allclose(predict_faces(model, faces, flip=True, shift=2), expected, rtol=1e-5)
    assert not np.allclose(predict_faces(model, faces, flip=True), expected, rtol=1e-3)


def test_bad_training_options_exit_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = write_fer_csv(tmp_path / "fer.csv", train_per_class=2, test_per_class=1)
    with pytest.raises(SystemExit) as exit_info:
        train.parse_args(["--model", "mini_xception", "--data", str(data), "--extra-blocks", "1,2"])
    assert exit_info.value.code == 2 and "four counts" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.parse_args(["--model", "mini_xception", "--data", str(data), "--teacher-weight", "1.5"])
    assert "between 0 and 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.parse_args(["--model", "mini_xception", "--data", str(data), "--stop-after", "0"])
    assert "1 or more" in capsys.readouterr().err
    for option, value, message in (("--ema", "0.5", "momentum"), ("--teacher-shift", "-1", "pixels"),
                                    ("--bn-recalibration", "-5", "samples"),
                                    ("--augment-strength", "2", "between 0 and 1"),
                                    ("--camera-framing", "0.9", "spread")):
        with pytest.raises(SystemExit):
            train.parse_args(["--model", "mini_xception", "--data", str(data), option, value])
        assert message in capsys.readouterr().err
    common = ["--data", str(data), "--out", str(tmp_path / "run"), "--epochs", "1", "--fresh"]
    code = train.main(["--model", "ds_cnn", "--extra-blocks", "0,1,0,0", *common])
    assert code == 2 and "--extra-blocks applies to mini_xception" in capsys.readouterr().err
    code = train.main(["--model", "ds_cnn", "--pooling", "attention", *common])
    assert code == 2 and "--pooling applies to voice_cnn" in capsys.readouterr().err
    code = train.main(["--model", "mini_xception", "--band-norm", "window-mean", *common])
    assert code == 2 and "--band-norm applies to voice_cnn" in capsys.readouterr().err
    code = train.main(["--model", "voice_cnn", "--teacher-shift", "2", *common])
    assert code == 2 and "--teacher-shift applies to the face models" in capsys.readouterr().err
    code = train.main(["--model", "voice_cnn", "--augment-strength", "0.5", *common])
    assert code == 2 and "--augment-strength applies to the face models" in capsys.readouterr().err
    code = train.main(["--model", "mini_xception", "--camera-framing", "0.14", *common])
    assert code == 2 and "give --camera-crops SHARE too" in capsys.readouterr().err
    code = train.main(["--model", "mini_xception", "--teacher", str(tmp_path / "missing.keras"), *common])
    assert code == 2 and "--teacher" in capsys.readouterr().err
    (tmp_path / "broken.keras").write_text("not a model")
    code = train.main(["--model", "mini_xception", "--init-from", str(tmp_path / "broken.keras"), *common])
    assert code == 2 and "not a readable Keras checkpoint" in capsys.readouterr().err


def test_model_card_lists_every_step_and_the_teachers() -> None:
    from converters.model_card import _training_commands

    step1 = {"command": "python -m training.train --epochs 35", "epochs_run": 35}
    teacher = {"checkpoint": "runs/ds/best.keras", "command": "python -m training.train --model ds_cnn"}
    step2 = {"command": "python -m training.train --teacher runs/ds/best.keras", "epochs_run": 28,
             "continued_from": {"checkpoint": "step1.keras", **step1}, "teachers": [teacher]}
    lines = _training_commands(step2)
    assert lines[0] == "- training step 1: `python -m training.train --epochs 35` (35 epochs)"
    assert lines[1].startswith("- training step 2: `python -m training.train --teacher")
    assert lines[2] == ("  - distilled from `runs/ds/best.keras`, trained by "
                        "`python -m training.train --model ds_cnn`")
