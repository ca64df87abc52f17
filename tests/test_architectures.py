"""Builders: shapes, parameter budgets, and that every architecture survives full-integer int8."""

from __future__ import annotations

import os
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")

from converters.quantize import convert  # noqa: E402
from device.runtime.tflite_model import TFLiteModel  # noqa: E402
from device.vision.preprocessing import equalize_batch  # noqa: E402
from tests.synthetic_faces import synthetic_faces  # noqa: E402
from training.architectures import ds_cnn, mini_xception, vgg_teacher  # noqa: E402


@pytest.mark.parametrize(("builder", "width", "low", "high"),
                         [(mini_xception, 1.0, 55_000, 62_000), (mini_xception, 1.25, 80_000, 100_000),
                          (ds_cnn, 1.0, 60_000, 100_000)])
def test_output_shape_and_parameter_budget(builder, width: float, low: int, high: int) -> None:
    model = builder(width=width)
    assert model.input_shape == (None, 48, 48, 1)
    assert model.output_shape == (None, 7)
    assert low <= model.count_params() <= high
    probs = model.predict(np.zeros((2, 48, 48, 1), np.float32), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_vgg_teacher_is_a_face_model_of_about_a_million_parameters() -> None:
    from training.train import FACE_MODELS

    keras.utils.set_random_seed(0)
    model = vgg_teacher()
    assert model.input_shape == (None, 48, 48, 1)
    assert model.output_shape == (None, 7)
    assert model.get_layer("probabilities").output.shape == (None, 7)
    assert 1_000_000 <= model.count_params() <= 1_300_000
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 1)).astype(np.float32)
    probs = model.predict(faces, verbose=0)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert "vgg_teacher" in FACE_MODELS


def _trained_int8(model: keras.Model, x: np.ndarray, labels: np.ndarray, tmp_path: Path, epochs: int,
                  batch_size: int):
    """Fit briefly, convert to full-integer int8 and check what every int8 model must hold: only
    integer tensors, and the float model's class on at least 90% of the training inputs."""
    from ai_edge_litert.interpreter import Interpreter

    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, labels, epochs=epochs, batch_size=batch_size, verbose=0)
    path = tmp_path / "model_int8.tflite"
    path.write_bytes(convert(model, x[::3]))
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    dtypes = {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    assert dtypes <= {"int8", "int32"}, f"float tensors left in the int8 model: {dtypes}"
    tflite = TFLiteModel(path)
    q = np.clip(np.round(x / tflite.input.scale + tflite.input.zero_point), -128, 127).astype(np.int8)
    int8_pred = np.array([tflite.invoke(sample[None]).argmax() for sample in q])
    assert np.mean(int8_pred == model.predict(x, verbose=0).argmax(axis=1)) >= 0.9
    return interpreter, tflite


@pytest.mark.slow
@pytest.mark.parametrize("builder", [mini_xception, ds_cnn])
def test_int8_conversion_is_integer_only_and_agrees_with_float(builder, tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    faces, labels = synthetic_faces(24, seed=3)
    x = equalize_batch(faces)[..., None].astype(np.float32)
    interpreter, tflite = _trained_int8(builder(width=0.5), x, labels, tmp_path, epochs=4, batch_size=32)
    assert tflite.input.dtype == np.int8 and tflite.output.dtype == np.int8
    assert (tflite.input.scale, tflite.input.zero_point) == (1.0, -128)  # pixel - 128
    names = [t["name"] for t in interpreter.get_tensor_details()]
    assert not any(";" in name for name in names) and len(set(names)) == len(names)


def test_short_tensor_names_change_nothing_but_the_names(tmp_path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from converters.quantize import short_tensor_names

    keras.utils.set_random_seed(2)
    model = mini_xception(width=0.5)
    x = equalize_batch(synthetic_faces(8, seed=4)[0])[..., None].astype(np.float32)
    with patch("converters.quantize.short_tensor_names", side_effect=lambda flatbuffer: flatbuffer):
        long_named = convert(model, x)
    (tmp_path / "long.tflite").write_bytes(long_named)
    (tmp_path / "short.tflite").write_bytes(short_tensor_names(long_named))
    outputs, sizes = [], []
    for name in ("long", "short"):
        interpreter = Interpreter(model_path=str(tmp_path / f"{name}.tflite"))
        interpreter.allocate_tensors()
        q = (x[:1].astype(np.int16) - 128).astype(np.int8)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], q)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy())
        sizes.append((tmp_path / f"{name}.tflite").stat().st_size)
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert sizes[1] < sizes[0] - 1000


def test_grown_mini_xception_starts_as_the_model_it_grew_from() -> None:
    from training.train import copy_weights

    keras.utils.set_random_seed(1)
    small = mini_xception(width=0.5)
    # Non-trivial batch-norm statistics, so an identity module that is not exactly zero would show.
    for layer in small.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma * 1.3, beta + 0.1, mean + 0.2, var * 0.8])
    grown = mini_xception(width=0.5, extra_blocks=(0, 1, 0, 1))
    assert grown.count_params() > small.count_params()
    copy_weights(small, grown, "small.keras")
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 1)).astype(np.float32)
    np.testing.assert_allclose(grown.predict(faces, verbose=0), small.predict(faces, verbose=0), atol=1e-6)


def test_copy_weights_refuses_another_width() -> None:
    from training.data_errors import DataError
    from training.train import copy_weights

    with pytest.raises(DataError, match="other shapes"):
        copy_weights(mini_xception(width=0.5), mini_xception(width=1.0), "narrow.keras")
    with pytest.raises(DataError, match="no counterpart"):
        copy_weights(mini_xception(width=0.5, extra_blocks=(1, 0, 0, 0)), mini_xception(width=0.5),
                     "grown.keras")


def _voice_windows(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Log-mel-like windows (dB) whose class is where in time a loud band-limited burst sits, so
    the attention has something to find."""
    rng = np.random.default_rng(seed)
    x = rng.normal(-60, 4, (count, 48, 32, 1)).astype(np.float32)
    labels = rng.integers(0, 4, count)
    for window, label in zip(x, labels, strict=True):
        window[8 * label:8 * label + 8, 4 + 6 * label:10 + 6 * label] += 35
    return x, labels


def test_attention_pooling_averages_at_equal_scores_and_follows_the_scores_otherwise() -> None:
    from training.architectures import _attention_over_time, voice_cnn

    steps = np.random.default_rng(3).normal(0, 1, (2, 6, 4, 3)).astype(np.float32)
    inputs = keras.Input(shape=steps.shape[1:])
    pool = keras.Model(inputs, _attention_over_time(inputs, hidden=2))
    hidden, score = pool.get_layer("attention_hidden"), pool.get_layer("attention_score")
    # Equal scores: uniform weights, exactly the average over time and bands.
    score.set_weights([np.zeros((1, 1, 2, 1), np.float32), np.zeros(1, np.float32)])
    np.testing.assert_allclose(pool.predict(steps, verbose=0), steps.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    # Scores that rise with channel 0: the pooled features become the step where channel 0 peaks.
    kernel = np.zeros((1, 1, 3, 2), np.float32)
    kernel[0, 0, 0, 0] = 0.2
    hidden.set_weights([kernel, np.zeros(2, np.float32)])
    score.set_weights([np.full((1, 1, 2, 1), 400.0, np.float32), np.zeros(1, np.float32)])
    per_step = steps.mean(axis=2)
    loudest = per_step[np.arange(2), per_step[..., 0].argmax(axis=1)]
    np.testing.assert_allclose(pool.predict(steps, verbose=0), loudest, atol=0.05)
    # In the voice model it adds a few thousand parameters and keeps the output a distribution.
    average = voice_cnn(width=0.5, frames=48, bands=32)
    attention = voice_cnn(width=0.5, frames=48, bands=32, pooling="attention")
    assert 0 < attention.count_params() - average.count_params() < 3000
    np.testing.assert_allclose(attention.predict(_voice_windows(3, seed=1)[0], verbose=0).sum(axis=1), 1.0,
                               rtol=1e-5)
    with pytest.raises(ValueError, match="pooling 'max'"):
        voice_cnn(width=0.5, frames=48, bands=32, pooling="max")


def test_band_norm_cancels_a_fixed_spectral_tilt_but_keeps_the_level() -> None:
    from training.architectures import voice_cnn

    keras.utils.set_random_seed(4)
    x = _voice_windows(4, seed=5)[0]
    tilt = np.linspace(-9.0, 9.0, 32, dtype=np.float32)[None, None, :, None]  # dB per band, mean 0
    normalised = voice_cnn(num_classes=4, width=0.5, frames=48, bands=32, band_norm="window-mean")
    plain = voice_cnn(num_classes=4, width=0.5, frames=48, bands=32)
    assert normalised.count_params() == plain.count_params()
    logits = keras.Model(normalised.input, normalised.get_layer("logits").output)
    np.testing.assert_allclose(logits.predict(x + tilt, verbose=0), logits.predict(x, verbose=0), atol=1e-4)
    features = keras.Model(normalised.input, normalised.get_layer("band_tilt_removed").output)
    np.testing.assert_allclose(features.predict(x + tilt, verbose=0), features.predict(x, verbose=0),
                               atol=1e-5)
    # A level change is not cancelled: loudness still reaches the convolutions, as without the option.
    np.testing.assert_allclose(features.predict(x + 10.0, verbose=0) - features.predict(x, verbose=0),
                               0.5, atol=1e-4)  # 10 dB after the (dB + 70) / 20 scaling
    scaled = x / 20.0 + 3.5
    expected = scaled - scaled.mean(axis=1, keepdims=True) + scaled.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(features.predict(x, verbose=0), expected, atol=1e-5)
    with pytest.raises(ValueError, match="band_norm 'max'"):
        voice_cnn(width=0.5, frames=48, bands=32, band_norm="max")


@pytest.mark.slow
@pytest.mark.parametrize("options", [{"pooling": "attention"}, {"band_norm": "window-mean"}])
def test_voice_model_variants_survive_full_integer_int8(options: dict, tmp_path: Path) -> None:
    from training.architectures import voice_cnn

    keras.utils.set_random_seed(6)
    x, labels = _voice_windows(96, seed=2)
    model = voice_cnn(num_classes=4, width=0.5, frames=48, bands=32, **options)
    _trained_int8(model, x, labels, tmp_path, epochs=6, batch_size=16)
