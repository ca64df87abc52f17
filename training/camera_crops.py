"""Training faces as the daemon's camera crops them, not as FER2013 stored them.

FER2013's faces are equalized 48x48 images whose every pixel belongs to the photo. The daemon
crops a tracked box out of a camera frame, so its crop is off by the box's jitter: a strip of
whatever surrounds the face (a wall, a shelf, sensor noise) enters at one side, the frame carries
noise and clipped highlights, and `cv2.equalizeHist` then spreads the histogram of that whole crop,
the foreign strip included. A model that only ever saw mirrored borders and equalized-then-warped
faces loses accuracy there: the shipped mini-Xception scores 66.9% on e2e frames cropped at the
faces' true boxes against 69.5% on their clean images, 63.2% against 68.9% on noisy backgrounds
(`python -m benchmarks.e2e.gap_sources`). These ops recreate that path on raw faces inside the
input pipeline: warp with the uncovered border filled by foreign content, lighting with clipping,
sensor noise, a slight blur, then the daemon's equalization over the whole crop.

The foreign content is generic (a flat grey, smooth noise of random level and contrast, or another
training face's pixels): nothing is drawn from the e2e clip's backgrounds.
"""

from __future__ import annotations

import tensorflow as tf

LEVELS = 256


def equalize(batch: tf.Tensor) -> tf.Tensor:
    """`cv2.equalizeHist` on a (N, H, W, 1) batch of 0..255 floats, as float32 0..255.

    OpenCV's rule: lut[v] = round(255 (cdf[v] - cdf_min) / (N - cdf_min)), with cdf_min the count
    of the darkest level present; a one-level image stays as it is."""
    n = tf.shape(batch)[0]
    pixels = tf.cast(tf.round(tf.clip_by_value(tf.reshape(batch, [n, -1]), 0.0, 255.0)), tf.int32)
    total = tf.cast(tf.shape(pixels)[1], tf.float32)
    hist = tf.math.bincount(pixels, minlength=LEVELS, maxlength=LEVELS, axis=-1)
    cdf = tf.cast(tf.cumsum(hist, axis=1), tf.float32)
    cdf_min = tf.reduce_min(tf.where(hist > 0, cdf, total), axis=1, keepdims=True)
    span = total - cdf_min
    lut = tf.clip_by_value(tf.round(255.0 * (cdf - cdf_min) / tf.maximum(span, 1.0)), 0.0, 255.0)
    lut = tf.where(span > 0, lut, tf.cast(tf.range(LEVELS), tf.float32)[None, :])
    return tf.reshape(tf.gather(lut, pixels, batch_dims=1), tf.shape(batch))


def foreign_content(batch: tf.Tensor) -> tf.Tensor:
    """Per face, what a camera might show around it: a flat grey, smooth noise, or another face."""
    n, size = tf.shape(batch)[0], tf.shape(batch)[1]
    flat = tf.random.uniform([n, 1, 1, 1], 0.0, 255.0) * tf.ones_like(batch)
    coarse = tf.random.normal([n, 8, 8, 1])
    smooth = tf.image.resize(coarse, [size, size], method="bilinear")
    level = tf.random.uniform([n, 1, 1, 1], 40.0, 215.0)
    contrast = tf.random.uniform([n, 1, 1, 1], 5.0, 40.0)
    noise = level + smooth * contrast
    other = tf.roll(batch, shift=1, axis=0)
    kind = tf.random.uniform([n, 1, 1, 1], 0, 3, dtype=tf.int32)
    return tf.where(kind == 0, flat, tf.where(kind == 1, noise, other))


def with_foreign_border(warped: tf.Tensor, covered: tf.Tensor, chosen: tf.Tensor) -> tf.Tensor:
    """Warped raw faces whose uncovered border (where `covered`, the warp of an all-ones image, is
    below 1) shows foreign content instead of the mirrored photo, for the `chosen` (N, 1, 1, 1) ones."""
    framed = warped * covered + foreign_content(warped) * (1.0 - covered)
    return chosen * framed + (1.0 - chosen) * warped


def sensor(batch: tf.Tensor, chosen: tf.Tensor, max_noise: float = 12.0) -> tf.Tensor:
    """For the `chosen` faces: Gaussian noise up to `max_noise` grey levels and, for half of them,
    a 3x3 blur (the camera's and the codec's softness), clipped to 0..255 as a frame is.

    A dim room's sensor noise of 6-18 grey levels per pixel, in a face 80-260 px wide, is about
    1-11 levels once the crop is shrunk to 48x48 (area averaging); equalization then amplifies it
    in low-contrast faces. A pilot with up to 8 levels did not close the loss on noisy frames (the
    model on crops at the true box: 61% against 68% on the clean faces), hence 12."""
    n = tf.shape(batch)[0]
    noisy = batch + tf.random.normal(tf.shape(batch)) * tf.random.uniform([n, 1, 1, 1], 0.0, max_noise)
    kernel = tf.constant([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0
    padded = tf.pad(noisy, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    blurred = tf.nn.conv2d(padded, kernel[:, :, None, None], strides=1, padding="VALID")
    soft = tf.cast(tf.random.uniform([n, 1, 1, 1]) < 0.5, tf.float32)
    camera = soft * blurred + (1.0 - soft) * noisy
    return tf.clip_by_value(chosen * camera + (1.0 - chosen) * batch, 0.0, 255.0)
