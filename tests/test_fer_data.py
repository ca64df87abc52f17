"""FER2013 loaders: both public layouts, usage selection, and every malformed case."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.synthetic_faces import synthetic_faces, write_fer_csv, write_fer_folder
from training.data_errors import DataError
from training.fer_data import load_faces

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["fer.csv", "fer.csv.gz"])
def test_csv_selects_usage_and_keeps_pixels(tmp_path: Path, name: str) -> None:
    path = write_fer_csv(tmp_path / name, train_per_class=3, test_per_class=2)
    train = load_faces(path, "Training")
    test = load_faces(path, "PublicTest")
    everything = load_faces(path, None)
    assert (len(train), len(test), len(everything)) == (21, 14, 35)
    expected, labels = synthetic_faces(3, seed=0)
    np.testing.assert_array_equal(train.faces, expected)
    np.testing.assert_array_equal(train.labels, labels)
    assert train.faces.dtype == np.uint8 and train.faces.shape[1:] == (48, 48)


def test_folder_tree_with_mixed_case_classes(tmp_path: Path) -> None:
    write_fer_folder(tmp_path, per_class=2)
    faces = load_faces(tmp_path, "Training")
    assert len(faces) == 14
    assert sorted(np.bincount(faces.labels)) == [2] * 7
    expected, _ = synthetic_faces(2, seed=0)
    assert {f.tobytes() for f in faces.faces} == {f.tobytes() for f in expected}


def _csv_with_row(tmp_path: Path, row: str) -> Path:
    path = write_fer_csv(tmp_path / "bad.csv", train_per_class=1, test_per_class=1)
    lines = path.read_text().splitlines()
    lines.insert(3, row)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("3," + " ".join(["7"] * 2303) + ",Training", "line 4: 2303 pixel values, expected 2304"),
        ("9," + " ".join(["7"] * 2304) + ",Training", "line 4: emotion '9' is not an integer 0-6"),
        ("3," + " ".join(["7"] * 2303 + ["300"]) + ",Training", "line 4: pixel value '300'"),
        ("3,1 2 3", "line 4: 2 fields, expected 3"),
    ],
)
def test_malformed_csv_rows_name_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    path = _csv_with_row(tmp_path, row)
    with pytest.raises(DataError, match=message) as info:
        load_faces(path, "Training")
    assert str(path) in str(info.value)


def test_empty_file_and_wrong_header(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        load_faces(empty)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("label,image\n1,2\n")
    with pytest.raises(DataError, match="header"):
        load_faces(wrong)


def test_unknown_class_folder_and_unreadable_image(tmp_path: Path) -> None:
    write_fer_folder(tmp_path / "a", per_class=1)
    (tmp_path / "a" / "train" / "confused").mkdir()
    with pytest.raises(DataError, match="unknown class folder 'confused'"):
        load_faces(tmp_path / "a")
    write_fer_folder(tmp_path / "b", per_class=1)
    broken = tmp_path / "b" / "train" / "Happy" / "broken.png"
    broken.write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"broken\.png: unreadable image"):
        load_faces(tmp_path / "b")


def test_folder_resizes_larger_images(tmp_path: Path) -> None:
    folder = tmp_path / "sad"
    folder.mkdir()
    cv2.imwrite(str(folder / "big.jpg"), np.full((96, 96), 128, np.uint8))
    faces = load_faces(tmp_path)
    assert faces.faces.shape == (1, 48, 48) and faces.labels.tolist() == [4]


def test_evaluate_cli_reports_bad_data_without_traceback(tmp_path: Path) -> None:
    path = _csv_with_row(tmp_path, "9," + " ".join(["7"] * 2304) + ",PublicTest")
    model = tmp_path / "model.tflite"
    model.write_bytes(b"")
    result = subprocess.run([sys.executable, "-m", "training.evaluate", "--model", str(model),
                             "--data", str(path)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "error:" in result.stderr


def test_evaluate_scores_an_ensemble_as_its_averaged_probabilities(tmp_path: Path) -> None:
    from training.evaluate import evaluate, evaluate_ensemble

    write_fer_folder(tmp_path / "faces", per_class=3)
    data = str(tmp_path / "faces")
    mx, ds = REPO / "models" / "face_mini_xception_int8.tflite", REPO / "models" / "face_ds_cnn_int8.tflite"
    y, p_mx, _ = evaluate(mx, data, usage="Training", flip_tta=True)
    _, p_ds, _ = evaluate(ds, data, usage="Training", flip_tta=True)
    y_ens, p_ens, report = evaluate_ensemble([mx, ds], data, usage="Training", flip_tta=True)
    assert np.array_equal(y_ens, y) and np.allclose(p_ens, (p_mx + p_ds) / 2)
    assert report["accuracy"] == pytest.approx(np.mean(((p_mx + p_ds) / 2).argmax(axis=1) == y))
    result = subprocess.run([sys.executable, "-m", "training.evaluate", "--model", str(mx), "--model",
                             str(tmp_path / "missing.tflite"), "--data", data, "--usage", "Training"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2 and "missing.tflite: model file not found" in result.stderr


def test_evaluate_scores_the_daemons_inner_view_too(tmp_path: Path) -> None:
    from device.vision.face_classifier import FaceClassifier
    from training.evaluate import evaluate

    write_fer_folder(tmp_path / "faces", per_class=2)
    data = str(tmp_path / "faces")
    mx = REPO / "models" / "face_mini_xception_int8.tflite"
    _, whole, _ = evaluate(mx, data, usage="Training", flip_tta=True)
    _, both, _ = evaluate(mx, data, usage="Training", flip_tta=True, inner_view=0.87)
    daemon = FaceClassifier(mx, flip_tta=True, inner_view=0.87)
    faces = load_faces(tmp_path / "faces", "Training").faces
    assert np.allclose(both, [daemon.classify(face) for face in faces]) and not np.allclose(both, whole)
    for bad in ("1.0", "-0.1"):
        result = subprocess.run([sys.executable, "-m", "training.evaluate", "--model", str(mx),
                                 "--data", data, "--usage", "Training", "--inner-view", bad],
                                capture_output=True, text=True, cwd=REPO)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--inner-view" in result.stderr
