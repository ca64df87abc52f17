"""Speaker-independent cross-validation: fold assignment, a full tiny run, resuming by fold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from converters import cross_validation as cv
from training.data_errors import DataError

ACTORS = tuple(range(1, 21))


@pytest.mark.parametrize("selection", ["fixed", "inner"])
def test_each_actor_is_tested_once_and_no_fold_shares_an_actor_between_splits(selection: str) -> None:
    splits = cv.fold_splits(ACTORS, 5, selection, inner_val=4)
    cv.check_splits(splits, ACTORS, selection)
    tested = [a for split in splits for a in split["test"]]
    assert sorted(tested) == list(ACTORS)  # every actor in exactly one test fold
    assert [split["test"] for split in splits] == [(1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12),
                                                   (13, 14, 15, 16), (17, 18, 19, 20)]
    for split in splits:
        train, val, test = set(split["train"]), set(split["val"]), set(split["test"])
        assert not train & test and not train & val
        assert sum(a % 2 for a in test) == 2  # two men (odd) and two women per test fold
        if selection == "fixed":
            assert val == test and len(train) == 16  # watched only; the model trains on all 16 others
        else:
            assert not val & test and len(val) == 4 and len(train) == 12
            assert sum(a % 2 for a in val) == 2
        assert train | val | test == set(ACTORS)


def test_bad_fold_counts_and_overlapping_folds_are_refused() -> None:
    with pytest.raises(DataError, match="equal size"):
        cv.fold_assignment(ACTORS, 3)
    with pytest.raises(DataError, match="at least 2"):
        cv.fold_assignment(ACTORS, 1)
    leaky = [{"train": (1, 2, 3), "val": (4,), "test": (3, 4)},
             {"train": (3, 4), "val": (1, 2), "test": (1, 2)}]
    with pytest.raises(AssertionError, match="shares actors"):
        cv.check_splits(leaky, (1, 2, 3, 4), "fixed")
    with pytest.raises(DataError, match="sets"):
        cv.check_recipe(["--model", "voice_cnn", "--val-actors", "1-4"])
    with pytest.raises(DataError, match="face model"):
        cv.check_recipe(["--model", "mini_xception"])


@pytest.mark.slow
def test_cross_validation_runs_writes_each_fold_and_skips_finished_folds(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.voice_fixtures import write_ravdess_folder

    data = str(write_ravdess_folder(tmp_path / "ravdess", actors=(1, 2, 3, 4, 5, 6)))
    out = tmp_path / "cv"
    argv = ["--data", data, "--out", str(out), "--actors", "1-6", "--folds", "3",
            "--model", "voice_cnn", "--width", "0.5", "--epochs", "2", "--batch-size", "8"]
    assert cv.main(argv) == 0
    printed = capsys.readouterr().out
    summary = json.loads(printed.strip().splitlines()[-1])
    assert summary["complete"] and summary["folds_done"] == [1, 2, 3] and summary["clips"] == 48
    for key in ("float32_accuracy", "float32_uar", "int8_accuracy", "int8_uar"):
        assert 0.0 <= summary[f"{key}_mean"] <= 1.0 and summary[f"{key}_sd"] >= 0.0
    report = (out / "report.md").read_text()
    assert "| **mean ± sd** |" in printed and "| **mean ± sd** |" in report
    assert "| mean val_accuracy |" in report and "never used to pick" in report
    for number, test in ((1, [1, 2]), (2, [3, 4]), (3, [5, 6])):
        result = json.loads((out / f"fold_{number}" / "results.json").read_text())
        assert result["test_actors"] == test and result["val_actors"] == test
        assert not set(result["train_actors"]) & set(test)
        assert result["float32"]["n"] == result["int8"]["n"] == 16  # 8 clips per test actor
        assert result["kept_epoch"] == result["epochs_run"] == 2  # the final epoch, chosen on nothing
        assert f"--train-actors {','.join(map(str, result['train_actors']))}" in result["train_command"]
        assert "--keep last" in result["train_command"]
        assert (out / f"fold_{number}" / "model_int8.tflite").is_file()

    # Interrupted after fold 1: only the folds without results are trained again.
    (out / "fold_2" / "results.json").unlink()
    (out / "fold_3" / "results.json").unlink()
    trained: list[str] = []
    real_train_fold = cv.train_fold
    monkeypatch.setattr(cv, "train_fold", lambda argv: trained.append(argv[argv.index("--out") + 1])
                        or real_train_fold(argv))
    assert cv.main([*argv, "--only", "2"]) == 0  # a piece: fold 2 now, fold 3 later
    assert trained == [str(out / "fold_2" / "train")]
    partial = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert partial["folds_done"] == [1, 2] and not partial["complete"]
    assert cv.main(argv) == 0
    assert trained[1:] == [str(out / "fold_3" / "train")]
    assert "finished earlier" in capsys.readouterr().out
    assert cv.main(argv) == 0
    assert len(trained) == 2  # everything finished: nothing trains
    (out / "fold_3" / "results.json").unlink()
    assert cv.main([*argv, "--summary"]) == 0  # the finished folds only, nothing trained
    assert len(trained) == 2
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["folds_done"] == [1, 2]

    # Another recipe never lands in the same folder.
    assert cv.main([*argv[:-2], "--batch-size", "16"]) == 2
    assert "other recipe" in capsys.readouterr().err


def test_the_report_names_the_whole_command_not_the_piece_run() -> None:
    argv = ["--data", "d", "--out", "o", "--only", "2", "--model", "voice_cnn", "--summary", "--only=3"]
    assert cv.rerun_argv(argv) == ["--data", "d", "--out", "o", "--model", "voice_cnn"]
