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
    assert train.main([*common, "--epochs", "1"]) == 0
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


@pytest.mark.slow
def test_warm_restart_records_the_run_it_continues(trained_run: tuple[Path, Path], tmp_path: Path) -> None:
    data, out = trained_run
    code = train.main(["--model", "mini_xception", "--width", "0.5", "--data", str(data),
                       "--out", str(tmp_path / "continued"), "--batch-size", "32", "--epochs", "1",
                       "--init-from", str(out / "best.keras")])
    assert code == 0
    info = json.loads((tmp_path / "continued" / "training.json").read_text())
    previous = info["continued_from"]
    assert previous["checkpoint"] == str(out / "best.keras")
    assert previous["command"].endswith("--epochs 2") and previous["epochs_run"] == 2
