"""Options of the voice recipe chosen by cross-validation: babble from the batch, mixup, and a
shipped model trained on every actor with validation only watched."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from training import train  # noqa: E402
from training.mixup import mixup  # noqa: E402
from training.voice_task import (  # noqa: E402
    CROP_FRAMES,
    WARP_BANDS,
    WARP_TEMPO,
    babble,
    make_augment,
    speaker_warp,
)


def _batch(size: int = 8) -> np.ndarray:
    rng = np.random.default_rng(0)
    batch = rng.normal(-60.0, 8.0, (size, CROP_FRAMES, 64, 1)).astype(np.float32)
    batch[1] += 25.0  # a loud clip: its babble must come down to its SNR all the same
    return batch


def _level(x: np.ndarray) -> np.ndarray:
    return 10 * np.log10(np.mean(10 ** (x.astype(np.float64) / 10), axis=(1, 2, 3)))


def test_babble_is_other_clips_of_the_batch_at_the_snr_asked_for() -> None:
    x = _batch()
    noisy = babble(tf.constant(x), 1.0, (12.0, 12.0)).numpy()
    power = 10 ** (noisy.astype(np.float64) / 10) - 10 ** (x.astype(np.float64) / 10)
    added = 10 * np.log10(np.maximum(power, 1e-30))
    np.testing.assert_allclose(_level(x) - _level(added), 12.0, atol=0.05)
    np.testing.assert_array_equal(babble(tf.constant(x), 0.0).numpy(), x)  # share 0: untouched
    assert make_augment(0.0).__name__ == "augment"  # the shipped chain unless asked for
    assert make_augment(0.5)(tf.constant(x)).shape == (8, 198, 64, 1)


def test_speaker_warp_moves_formants_and_tempo_within_their_ranges() -> None:
    frames, bands = CROP_FRAMES, 64
    x = np.full((64, frames, bands, 1), -80.0, np.float32)
    x[:, :, 40] = -20.0  # a formant at band 40 all along the crop
    centre = (frames - 1) / 2
    x[:, int(centre) + 41] = 0.0  # and a click 41.5 frames after the crop's centre
    warped = speaker_warp(tf.constant(x), 1.0).numpy()[..., 0]
    formant = warped[:, 10].argmax(axis=1)  # frame 10: no click there; +-1 for the interpolation
    assert formant.min() >= 40 / (1 + WARP_BANDS) - 1 and formant.max() <= 40 / (1 - WARP_BANDS) + 1
    assert len(set(formant)) > 3  # each sample its own vocal tract
    click = warped[:, :, 5].argmax(axis=1)
    after = click - centre
    assert after.min() >= 41.5 / (1 + WARP_TEMPO) - 1 and after.max() <= 41.5 / (1 - WARP_TEMPO) + 1
    assert len(set(click)) > 3
    np.testing.assert_array_equal(speaker_warp(tf.constant(x), 0.0).numpy(), x)  # share 0: untouched
    assert make_augment(warp_probability=0.5)(tf.constant(x)).shape == (64, 198, 64, 1)


def test_mixup_blends_inputs_targets_and_weights_alike_with_the_sample_dominant() -> None:
    x = _batch()
    y = np.eye(8, dtype=np.float32)
    w = np.arange(1, 9, dtype=np.float32)
    mixed = mixup(tf.constant(x), tf.constant(y), tf.constant(w), 0.4)
    mixed_x, mixed_y, mixed_w = (t.numpy() for t in mixed)
    lam = mixed_y.max(axis=1)
    assert np.all(lam >= 0.5 - 1e-6) and np.allclose(mixed_y.sum(axis=1), 1.0)
    own = mixed_y.argmax(axis=1)
    np.testing.assert_array_equal(own, np.arange(8))
    other = np.array([np.argsort(row)[-2] if row.max() < 1 - 1e-6 else i for i, row in enumerate(mixed_y)])
    share = lam[:, None, None, None]
    np.testing.assert_allclose(mixed_x, share * x + (1 - share) * x[other], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(mixed_w, lam * w + (1 - lam) * w[other], rtol=1e-5)


def test_voice_options_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for option, value, message in (("--babble", "1.5", "between 0 and 1"),
                                   ("--babble-snr", "30,5", "LOW,HIGH"), ("--mixup", "-1", "Beta"),
                                   ("--speaker-warp", "2", "between 0 and 1")):
        with pytest.raises(SystemExit):
            train.parse_args(["--model", "voice_cnn", "--data", ".", option, value])
        assert message in capsys.readouterr().err
    parsed = train.parse_args(["--model", "voice_cnn", "--data", ".", "--babble-snr", "5,30"])
    assert parsed.babble_snr == (5, 30)
    code = train.main(["--model", "mini_xception", "--data", str(tmp_path), "--babble", "0.2",
                       "--out", str(tmp_path / "run")])
    assert code == 2 and "--babble applies to the voice model" in capsys.readouterr().err


@pytest.mark.slow
def test_a_voice_run_on_every_actor_and_its_card(tmp_path: Path, capsys) -> None:
    from tests.voice_fixtures import write_ravdess_folder

    data = write_ravdess_folder(tmp_path / "ravdess", actors=(1, 2, 3))
    common = ["--model", "voice_cnn", "--width", "0.5", "--data", str(data), "--train-actors", "1-3",
              "--val-actors", "3", "--batch-size", "8", "--epochs", "1", "--babble", "0.5", "--mixup", "0.2"]
    assert train.main([*common, "--out", str(tmp_path / "selected")]) == 2  # best epoch on trained actors
    assert "--keep last" in capsys.readouterr().err
    assert train.main([*common, "--out", str(tmp_path / "all"), "--keep", "last"]) == 0
    info = json.loads((tmp_path / "all" / "training.json").read_text())
    assert "watched only" in info["data"]["protocol"] and info["kept_epoch"] == 1
    assert info["data"]["validation_seen_in_training"] is True

    # Converted, its card calls the check on trained-on actors a fit and carries the recipe's
    # cross-validation estimate instead; a run still missing folds is refused.
    from converters import quantize

    summary = {"folds_done": [1, 2], "folds": 2, "complete": True, "clips": 480,
               "int8_accuracy_mean": 0.6612, "int8_accuracy_sd": 0.0321, "int8_uar_mean": 0.65,
               "int8_uar_sd": 0.03, "per_fold": [{"int8_accuracy": 0.6933}, {"int8_accuracy": 0.6291}]}
    (tmp_path / "cv.json").write_text(json.dumps(summary))
    (tmp_path / "cv_part.json").write_text(json.dumps({**summary, "complete": False, "folds_done": [1]}))
    convert = ["--keras", str(tmp_path / "all" / "best.keras"), "--data", str(data), "--name", "v",
               "--out-dir", str(tmp_path / "models"), "--train-actors", "1-3", "--val-actors", "3",
               "--calibration", "16", "--max-drop", "100",
               "--training-info", str(tmp_path / "all" / "training.json")]
    capsys.readouterr()
    assert quantize.main([*convert, "--cross-validation", str(tmp_path / "cv_part.json")]) == 2
    assert "only folds [1] of 2 are done" in capsys.readouterr().err
    assert quantize.main([*convert, "--cross-validation", str(tmp_path / "cv.json")]) == 0
    card = (tmp_path / "models" / "v_int8.md").read_text()
    assert "| int8 | 3 actors, trained on (a fit, not an estimate) |" in card
    assert "accuracy **66.12% ± 3.21** (per fold 69.33 / 62.91)" in card
