"""FER2013 as a training task: equalized faces, image augmentation, flip test-time check."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from device.labels import FACE_LABELS
from device.preprocessing import equalize_batch
from training.fer_data import load_faces
from training.task import Task


def face_augmenter(seed: int) -> keras.Sequential:
    """Flip, shift, zoom, small rotation, brightness and contrast, on raw 0..255 pixels."""
    return keras.Sequential([
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomRotation(10 / 360, fill_mode="reflect", seed=seed + 1),
        layers.RandomZoom(0.12, fill_mode="reflect", seed=seed + 2),
        layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed + 3),
        layers.RandomContrast(0.2, value_range=(0, 255), seed=seed + 4),
        layers.RandomBrightness(0.1, value_range=(0, 255), seed=seed + 5),
    ], name="face_augmenter")


def predict_faces(model: keras.Model, faces: np.ndarray, flip: bool = False) -> np.ndarray:
    probs = model.predict(faces, batch_size=256, verbose=0)
    if flip:
        probs = 0.5 * (probs + model.predict(faces[:, :, ::-1], batch_size=256, verbose=0))
    return probs


def face_task(data: str, train_usage: str, val_usage: str, val_data: str | None, seed: int) -> Task:
    train = load_faces(data, train_usage)
    val = load_faces(val_data or data, val_usage)
    x_train = equalize_batch(train.faces)[..., None].astype(np.float32)
    x_val = equalize_batch(val.faces)[..., None].astype(np.float32)
    augmenter = face_augmenter(seed)

    def evaluate(model: keras.Model) -> tuple[np.ndarray, np.ndarray]:
        return val.labels, predict_faces(model, x_val)

    def extras(model: keras.Model) -> dict:
        flipped = predict_faces(model, x_val, flip=True)
        return {"flip_tta_accuracy": float(np.mean(flipped.argmax(axis=1) == val.labels))}

    return Task(
        labels=FACE_LABELS,
        x_train=x_train, y_train=train.labels, x_val=x_val, y_val=val.labels,
        augment=lambda batch: augmenter(batch, training=True),
        evaluate=evaluate,
        extras=extras,
        description={"train": train.source, "val": val.source,
                     "preprocessing": "grey 48x48 crop -> cv2.equalizeHist -> raw pixels 0..255"},
    )
