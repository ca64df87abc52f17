"""Small int8 face models built inside the tests, so no test needs a trained model or ../shared.

They go through the project's own converter (`converters.quantize.convert`) and card writer, so
they have exactly the format of shipped models; only their weights are untrained.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def tiny_face_keras(input_shape: tuple[int, int, int] = (48, 48, 1), classes: int = 7):
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape)
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="tiny_face")


def build_face_model(out_dir: Path, name: str, input_shape: tuple[int, int, int] = (48, 48, 1),
                     classes: int = 7) -> Path:
    """Write `<name>.tflite` (int8 I/O) and its JSON card into `out_dir`; return the .tflite path."""
    from converters.model_card import build_card, write_card
    from converters.quantize import convert
    from device.runtime.labels import FACE_LABELS

    rng = np.random.default_rng(0)
    calibration = rng.integers(0, 256, size=(32, *input_shape)).astype(np.float32)
    model = tiny_face_keras(input_shape, classes)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.tflite"
    path.write_bytes(convert(model, calibration))
    labels = FACE_LABELS if classes == len(FACE_LABELS) else tuple(f"class{i}" for i in range(classes))
    card = build_card(path, architecture=model.name, parameters=int(model.count_params()), labels=labels,
                      preprocessing="test model", training={}, metrics={}, kind="face")
    write_card(card, path)
    return path
