"""FER2013 as a training task: equalized faces, image augmentation, flip test-time check."""

from __future__ import annotations

from functools import partial

import keras
import numpy as np
import tensorflow as tf

from device.runtime.labels import FACE_LABELS
from device.vision.preprocessing import equalize_batch
from training.camera_crops import equalize, sensor, with_foreign_border
from training.fer_data import load_faces
from training.mixup import mixup
from training.task import Task


def crop_sides(n: tf.Tensor | int, zoom: float, chosen: tf.Tensor, framing: float) -> tf.Tensor:
    """Per face, the side of the crop over the side of the photo: uniform within +-`zoom` zoom, or
    for the `chosen` faces with `framing` > 0 log-normal with that spread, clipped to 0.7-1.5 (the
    detector's square around a face against FER2013's own framing of it)."""
    sides = 1.0 / tf.random.uniform([n], 1.0 - zoom, 1.0 + zoom)
    if not framing:
        return sides
    detector = tf.clip_by_value(tf.exp(tf.random.normal([n]) * framing), 0.7, 1.5)
    return tf.where(chosen, detector, sides)


def augment_faces(batch: tf.Tensor, max_degrees: float = 10.0, zoom: float = 0.12, shift: float = 0.1,
                  contrast: float = 0.2, brightness: float = 25.0, strength: float = 1.0,
                  camera: float = 0.0, framing: float = 0.0) -> tf.Tensor:
    """Random flip, rotation, zoom and shift in one bilinear warp, then contrast and brightness;
    `strength` scales every range but the flip's.

    With `camera` > 0 the batch holds raw faces and leaves equalized, as the daemon equalizes its
    crops: that share of faces gets a foreign border where the warp uncovered one, sensor noise and
    blur (`training.camera_crops`) before the equalization. With `framing` > 0 those faces are also
    framed as the daemon's detector frames them rather than by the uniform zoom: the side of the
    detector's square over FER2013's own side of the face is about log-normal with that spread
    (0.14: quartiles 0.923-1.108 on Training faces, `benchmarks.e2e.framing`, and 0.906-1.089 in
    the e2e clip), so a sixth of them show more than 15% of something else around the face, which
    the uniform +-12% zoom never did.

    Plain TensorFlow ops (thread-safe inside a parallel tf.data map, unlike Keras preprocessing
    layers, whose backend switching crashed a run here), on raw 0..255 pixels.
    """
    max_degrees, zoom, shift = max_degrees * strength, zoom * strength, shift * strength
    contrast, brightness = contrast * strength, brightness * strength
    n = tf.shape(batch)[0]
    size = tf.cast(tf.shape(batch)[1], tf.float32)
    centre = (size - 1.0) / 2.0
    flip = tf.where(tf.random.uniform([n]) < 0.5, -1.0, 1.0)
    angle = tf.random.uniform([n], -max_degrees, max_degrees) * (np.pi / 180.0)
    # Drawn only for camera crops, so a recipe without them keeps its random stream (and runs).
    chosen = tf.random.uniform([n]) < camera if camera else tf.zeros([n], tf.bool)
    inverse_zoom = crop_sides(n, zoom, chosen, framing)
    tx = tf.random.uniform([n], -shift, shift) * size
    ty = tf.random.uniform([n], -shift, shift) * size
    cos, sin = tf.cos(angle) * inverse_zoom, tf.sin(angle) * inverse_zoom
    # Output pixel p maps to input pixel centre + M (p - centre - t), M = rotation * zoom * flip.
    m00, m01, m10, m11 = cos * flip, sin, -sin * flip, cos
    a2 = centre - m00 * (centre + tx) - m01 * (centre + ty)
    b2 = centre - m10 * (centre + tx) - m11 * (centre + ty)
    zeros = tf.zeros([n])
    transforms = tf.stack([m00, m01, a2, m10, m11, b2, zeros, zeros], axis=1)

    def warp(images: tf.Tensor, fill_mode: str) -> tf.Tensor:
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
            fill_value=0.0, interpolation="BILINEAR", fill_mode=fill_mode)

    warped = warp(batch, "REFLECT")
    chosen = tf.cast(chosen, tf.float32)[:, None, None, None]
    if camera:
        warped = with_foreign_border(warped, warp(tf.ones_like(batch), "CONSTANT"), chosen)
    mean = tf.reduce_mean(warped, axis=[1, 2, 3], keepdims=True)
    gain = tf.random.uniform([n, 1, 1, 1], 1.0 - contrast, 1.0 + contrast)
    offset = tf.random.uniform([n, 1, 1, 1], -brightness, brightness)
    lit = tf.clip_by_value((warped - mean) * gain + mean + offset, 0.0, 255.0)
    if not camera:
        return lit
    return equalize(sensor(lit, chosen))


def shifted_faces(faces: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """(N, H, W, 1) faces moved by (dx, dy) pixels, the uncovered border mirrored like the
    training warp fills it."""
    h, w = faces.shape[1:3]
    padded = np.pad(faces, ((0, 0), (abs(dy),) * 2, (abs(dx),) * 2, (0, 0)), mode="symmetric")
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[:, top:top + h, left:left + w]


def predict_faces(model: keras.Model, faces: np.ndarray, flip: bool = False, shift: int = 0) -> np.ndarray:
    """Probabilities averaged over the requested views: the faces, their mirror images (`flip`,
    as the device scores them) and, with `shift`, copies moved that many pixels left, right, up
    and down. Many views make smoother, more shift-invariant targets for distillation."""
    offsets = [(0, 0)] + ([(shift, 0), (-shift, 0), (0, shift), (0, -shift)] if shift else [])
    views = [shifted_faces(faces, dx, dy) if dx or dy else faces for dx, dy in offsets]
    if flip:
        views += [view[:, :, ::-1] for view in views]
    return sum(model.predict(view, batch_size=256, verbose=0) for view in views) / len(views)


def _equalized(faces: np.ndarray) -> np.ndarray:
    return equalize_batch(faces[..., 0].astype(np.uint8))[..., None].astype(np.float32)


def face_task(data: str, train_usage: str, val_usage: str, val_data: str | None,
              teacher_shift: int = 0, augment_strength: float = 1.0, camera_crops: float = 0.0,
              camera_framing: float = 0.0, mixup_alpha: float = 0.0) -> Task:
    """`augment_strength` scales every warp and lighting range (1 = the defaults, 0 = mirror
    images only): a last short step on nearly clean faces fits the model to the inputs it meets,
    after long training on heavily warped ones. `camera_crops` is the share of training faces seen
    as the daemon's camera crops them (`augment_faces`); then the training arrays stay raw and are
    equalized after augmentation, and `clean` equalizes them for teachers and batch-norm statistics;
    `camera_framing` frames those faces with the detector's measured spread (`augment_faces`)."""
    train = load_faces(data, train_usage)
    val = load_faces(val_data or data, val_usage)
    x_train = (train.faces if camera_crops else equalize_batch(train.faces))[..., None].astype(np.float32)
    x_val = equalize_batch(val.faces)[..., None].astype(np.float32)

    def evaluate(model: keras.Model) -> tuple[np.ndarray, np.ndarray]:
        return val.labels, predict_faces(model, x_val)

    def extras(model: keras.Model) -> dict:
        flipped = predict_faces(model, x_val, flip=True)
        return {"flip_tta_accuracy": float(np.mean(flipped.argmax(axis=1) == val.labels))}

    return Task(
        labels=FACE_LABELS,
        x_train=x_train, y_train=train.labels, x_val=x_val, y_val=val.labels,
        augment=partial(augment_faces, strength=augment_strength, camera=camera_crops,
                        framing=camera_framing),
        clean=_equalized if camera_crops else (lambda faces: faces),
        evaluate=evaluate,
        extras=extras,
        predict=lambda model, faces: predict_faces(model, faces, flip=True, shift=teacher_shift),
        mix=(lambda x, y, w: mixup(x, y, w, mixup_alpha)) if mixup_alpha > 0 else None,
        description={"train": train.source, "val": val.source,
                     "preprocessing": "grey 48x48 crop -> cv2.equalizeHist -> raw pixels 0..255"},
    )
