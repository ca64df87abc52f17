"""Saliency maps (training/saliency.py): a toy model that reads one known patch must get maps
that sit on that patch; the guided clone computes what the model computes; the command writes
its pictures on synthetic faces and voice clips and refuses unusable inputs in one line."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from training import saliency
from training.architectures import ds_cnn, mini_xception, voice_cnn

PATCH = (30, 6)  # top-left (row, column) of the 8x8 patch: off-centre, so a flip or transpose shows
SIZE = 8
REGION = (slice(PATCH[0], PATCH[0] + SIZE), slice(PATCH[1], PATCH[1] + SIZE))


def patch_model(seed: int = 3) -> keras.Model:
    """Output depends only on the 8x8 patch: crop it, pad it back with zeros in place, a bias-free
    1x1 ReLU convolution, average, a ReLU dense layer, 3 logits, softmax. Weights set by hand."""
    rows, cols = PATCH
    inputs = keras.Input((48, 48, 1), name="face")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Cropping2D(((rows, 48 - rows - SIZE), (cols, 48 - cols - SIZE)))(x)
    x = keras.layers.ZeroPadding2D(((rows, 48 - rows - SIZE), (cols, 48 - cols - SIZE)))(x)
    x = keras.layers.Conv2D(4, 1, use_bias=False, activation="relu", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(6, name="hidden")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Dense(3, name="logits")(x)
    model = keras.Model(inputs, keras.layers.Softmax()(x))
    rng = np.random.default_rng(seed)
    model.get_layer("features").set_weights([np.array([1.0, -1.0, 2.0, -0.5]).reshape(1, 1, 1, 4)])
    model.get_layer("hidden").set_weights([np.abs(rng.normal(size=(4, 6))) + 0.2, np.full(6, 0.1)])
    logits = 0.3 * rng.normal(size=(6, 3))
    logits[2 * np.arange(3), np.arange(3)] = 1.5  # each class rises with its own hidden unit
    model.get_layer("logits").set_weights([logits, np.zeros(3)])
    return model


def noise_faces(n: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 48, 48, 1)).astype(np.float32)


def test_guided_relu_passes_only_positive_gradients_where_the_input_was_positive() -> None:
    x = tf.constant([-1.0, 2.0, 3.0, 7.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = saliency.guided_relu(x, max_value=6.0)
        total = tf.reduce_sum(y * tf.constant([1.0, 1.0, -1.0, 1.0]))
    np.testing.assert_allclose(y.numpy(), [0.0, 2.0, 3.0, 6.0])
    np.testing.assert_allclose(tape.gradient(total, x).numpy(), [0.0, 1.0, 0.0, 0.0])


@pytest.mark.parametrize("cls", [0, 1, 2])
def test_guided_backprop_concentrates_on_the_patch_the_model_reads(cls: int) -> None:
    model, faces = patch_model(), noise_faces()
    maps = saliency.guided_backprop(model, faces, cls)
    assert maps.shape == (len(faces), 48, 48)
    assert np.abs(maps).sum(axis=(1, 2)).min() > 0, "the guided map is empty"
    assert saliency.mass_inside(maps, REGION).min() > 0.8


@pytest.mark.parametrize("cls", [0, 1, 2])
def test_grad_cam_concentrates_on_the_patch_the_model_reads(cls: int) -> None:
    model, faces = patch_model(), noise_faces()
    assert saliency.default_cam_layer(model) == "features"
    maps = saliency.grad_cam(model, faces, cls)
    assert maps.shape == (len(faces), 48, 48) and maps.min() >= 0
    nonempty = maps.sum(axis=(1, 2)) > 0
    assert nonempty.any(), "Grad-CAM is empty for every sample"
    assert saliency.mass_inside(maps[nonempty], REGION).min() > 0.8


def test_maps_follow_the_patch_when_it_moves() -> None:
    """Not a fixed bias towards one place: the mirror-image model's maps sit on the mirrored patch."""
    model, faces = patch_model(), noise_faces()
    mirrored_faces = faces[:, :, ::-1]
    maps = saliency.guided_backprop(model, mirrored_faces, 0)
    mirrored_region = (REGION[0], slice(48 - PATCH[1] - SIZE, 48 - PATCH[1]))
    assert saliency.mass_inside(maps, mirrored_region).max() < 0.05  # the model never looks there
    assert saliency.mass_inside(maps, REGION).min() > 0.8


@pytest.mark.parametrize("builder", [mini_xception, ds_cnn])
def test_the_guided_clone_computes_the_same_logits_and_shares_the_weights(builder) -> None:
    keras.utils.set_random_seed(1)
    model = builder(width=0.25)
    faces = noise_faces(4)
    plain = saliency.logits_model(model)(faces, training=False).numpy()
    guided = saliency.logits_model(model, guided=True)
    np.testing.assert_allclose(guided(faces, training=False).numpy(), plain, rtol=1e-5, atol=1e-5)
    assert any(isinstance(layer, saliency.GuidedReLU) for layer in guided.layers)
    probs = model.predict(faces, verbose=0)
    np.testing.assert_allclose(tf.nn.softmax(plain).numpy(), probs, rtol=1e-4, atol=1e-6)


def test_grad_cam_defaults_to_a_whole_module_output_with_some_resolution() -> None:
    assert saliency.default_cam_layer(mini_xception(width=0.25)) == "module3_add"  # 6x6; module 4 is 3x3
    assert saliency.default_cam_layer(voice_cnn(width=0.5)) == "block6_relu"  # 12x4


def _save(model: keras.Model, path: Path) -> str:
    model.save(path)
    return str(path)


def test_cli_writes_a_grid_per_class_on_synthetic_faces_and_links_the_report(tmp_path: Path) -> None:
    from tests.synthetic_faces import write_fer_csv

    data = write_fer_csv(tmp_path / "fer.csv", train_per_class=1, test_per_class=3)
    keras.utils.set_random_seed(0)
    ckpt = _save(mini_xception(width=0.25), tmp_path / "face.keras")
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.md").write_text("# a run\n")
    out = run / "saliency"
    argv = ["--model", ckpt, "--data", str(data), "--out", str(out), "--per-class", "2",
            "--summary-per-class", "3"]
    assert saliency.main(argv) == 0
    from device.runtime.labels import FACE_LABELS

    for name in FACE_LABELS:
        assert (out / f"{name}.png").stat().st_size > 5000
    assert (out / "summary.png").is_file()
    result = json.loads((out / "saliency.json").read_text())
    assert result["kind"] == "face" and len(result["grids"]) == 7
    assert result["classes"]["happy"]["samples"] == 3 and len(result["classes"]["happy"]["grid_rows"]) == 2
    assert set(result["class_dependence"]) >= {"guided", "grad_cam", "guided_grad_cam"}
    shares = result["classes"]["angry"]["guided"]
    assert abs(sum(shares.values()) - 1.0) < 1e-3
    report = (run / "report.md").read_text()
    assert "saliency/saliency.md" in report and "saliency/happy.png" in report
    from training.reports import link_saliency

    link_saliency(out)  # as a second run does: the link is refreshed, not repeated
    assert (run / "report.md").read_text().count("## Saliency") == 1


def test_the_sample_is_fixed_by_the_seed_and_balanced_per_class() -> None:
    labels = np.repeat(np.arange(3), [5, 1, 9])
    first = saliency.seeded_sample(labels, 4, 4, seed=0)
    again = saliency.seeded_sample(labels, 4, 4, seed=0)
    assert all(np.array_equal(first[c], again[c]) for c in range(4))
    assert [len(first[c]) for c in range(4)] == [4, 1, 4, 0]
    assert all((labels[first[c]] == c).all() for c in range(4))
    other = saliency.seeded_sample(labels, 4, 4, seed=1)
    assert any(not np.array_equal(first[c], other[c]) for c in (0, 2))


@pytest.mark.slow
def test_cli_maps_the_log_mel_window_of_a_voice_model(tmp_path: Path) -> None:
    from tests.voice_fixtures import write_ravdess_folder

    data = write_ravdess_folder(tmp_path / "ravdess", actors=(17,))
    keras.utils.set_random_seed(0)
    ckpt = _save(voice_cnn(width=0.5), tmp_path / "voice.keras")
    out = tmp_path / "voice_saliency"
    assert saliency.main(["--model", ckpt, "--data", str(data), "--actors", "17", "--out", str(out),
                          "--per-class", "1"]) == 0
    result = json.loads((out / "saliency.json").read_text())
    assert result["kind"] == "voice" and len(result["grids"]) == 8
    assert "500-2000 Hz" in " ".join(result["area_shares"])
    assert (out / "calm.png").stat().st_size > 5000


def _one_line_error(capsys, argv: list[str]) -> str:
    assert saliency.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    return err


def test_unusable_checkpoint_or_data_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    from tests.synthetic_faces import write_fer_csv

    data = str(write_fer_csv(tmp_path / "fer.csv", train_per_class=1, test_per_class=1))
    out = str(tmp_path / "out")
    assert "no such file" in _one_line_error(capsys, ["--model", str(tmp_path / "nope.keras"),
                                                      "--data", data, "--out", out])
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a zip file at all")
    assert "not a readable Keras checkpoint" in _one_line_error(capsys, ["--model", str(junk), "--data", data,
                                                                         "--out", out])
    ckpt = _save(mini_xception(width=0.25), tmp_path / "face.keras")
    assert "no such file" in _one_line_error(capsys, ["--model", ckpt, "--data", str(tmp_path / "none.csv"),
                                                      "--out", out])
    bad = tmp_path / "bad.csv"
    bad.write_text("emotion,pixels,Usage\n3,1 2 3,PublicTest\n")
    assert "pixel values" in _one_line_error(capsys, ["--model", ckpt, "--data", str(bad), "--out", out])
    assert "--actors applies to voice" in _one_line_error(
        capsys, ["--model", ckpt, "--data", data, "--actors", "17-20", "--out", out])


def test_a_training_report_links_the_saliency_folder_when_it_exists(tmp_path: Path) -> None:
    from training.metrics import classification_report
    from training.reports import write_reports

    report = classification_report(np.array([0, 1, 1]), np.eye(2)[[0, 1, 0]], ("a", "b"))
    history = {"loss": [1.0], "accuracy": [0.5]}
    write_reports(tmp_path, history, report, "toy")
    assert "## Saliency" not in (tmp_path / "report.md").read_text()
    (tmp_path / "saliency").mkdir()
    (tmp_path / "saliency" / "saliency.md").write_text("# index\n")
    (tmp_path / "saliency" / "a.png").write_bytes(b"")
    write_reports(tmp_path, history, report, "toy")
    text = (tmp_path / "report.md").read_text()
    assert "[index and region shares](saliency/saliency.md)" in text and "[a](saliency/a.png)" in text
