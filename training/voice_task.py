"""RAVDESS speech as a training task: log-mel windows, audio augmentation, per-clip evaluation.

Features are computed once per clip with the device's own `log_mel` and kept in memory (about
a minute for all clips, then every epoch is cheap). Each training sample is a crop centred on
the clip's speech and a little longer than the model window, so the augmenter can pick a random
2 s inside it; validation windows are cut exactly as the device cuts them (2 s every 0.5 s, VAD
weighted), and `evaluate` scores whole clips from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from device.audio.log_mel import FLOOR_DB, HOP_LENGTH, SAMPLE_RATE, WINDOW_FRAMES, log_mel
from device.audio.vad import frame_levels_db
from device.audio.voice_windows import clip_score, clip_windows
from device.runtime.voice_labels import VOICE_LABELS
from training.data_errors import DataError
from training.mixup import mixup
from training.ravdess_data import Clip, clip_labels, find_clips, read_clip
from training.task import Task

CROP_SLACK_S = 0.8  # extra context around the 2 s window for the random time crop
CROP_FRAMES = WINDOW_FRAMES + round(CROP_SLACK_S * SAMPLE_RATE / HOP_LENGTH)
SPEECH_RANGE_DB = 35.0  # frames within this of the loudest frame count as the utterance
GAIN_DB = 10.0
SNR_DB = (10.0, 40.0)
NOISE_PROBABILITY = 0.5
FREQ_MASKS, FREQ_MASK_BANDS = 2, 8
TIME_MASKS, TIME_MASK_FRAMES = 2, 25
BABBLE_TALKERS = 3  # a babble sample is the power sum of 1 to this many other clips of the batch
BABBLE_SNR_DB = (5.0, 30.0)
WARP_BANDS = 0.10  # band-axis scale range of --speaker-warp: +-10%, about a vocal tract's spread
WARP_TEMPO = 0.15  # time-axis scale range: +-15% speaking rate


def speech_crop(samples: np.ndarray, frames: int = CROP_FRAMES) -> np.ndarray:
    """(frames, bands) of log-mel centred on the utterance (edge-padded when the clip is short)."""
    features = log_mel(samples)
    levels = frame_levels_db(samples)
    active = np.flatnonzero(levels > levels.max() - SPEECH_RANGE_DB)
    centre = (active[0] + active[-1]) // 2
    if len(features) < frames:
        features = np.pad(features, ((0, frames - len(features)), (0, 0)), mode="edge")
    start = int(np.clip(centre - frames // 2, 0, len(features) - frames))
    return features[start: start + frames]


@dataclass
class ClipWindowSet:
    """Every window of a list of clips, and which clip each belongs to."""

    features: np.ndarray  # (windows, frames, bands)
    weights: np.ndarray  # per window: VAD weight within its clip
    clip_index: np.ndarray  # per window
    labels: np.ndarray  # per clip

    def clip_probabilities(self, window_probs: np.ndarray) -> np.ndarray:
        return np.stack([clip_score(window_probs[self.clip_index == i], self.weights[self.clip_index == i])
                         for i in range(len(self.labels))])

    def predict_clips(self, model) -> np.ndarray:
        """Clip probabilities from a Keras model run on every window."""
        return self.clip_probabilities(model.predict(self.features[..., None], batch_size=256, verbose=0))


def window_set(clips: list[Clip]) -> ClipWindowSet:
    features, weights, owners = [], [], []
    for i, clip in enumerate(clips):
        windows = clip_windows(read_clip(clip))
        features.append(windows.features)
        weights.append(windows.weights)
        owners.append(np.full(len(windows.features), i))
    return ClipWindowSet(np.concatenate(features), np.concatenate(weights), np.concatenate(owners),
                             clip_labels(clips))


def random_time_crop(batch: tf.Tensor) -> tf.Tensor:
    """A different random WINDOW_FRAMES-long crop for every sample of a (B, T, bands, 1) batch."""
    size = tf.shape(batch)[0]
    offsets = tf.random.uniform([size], 0, tf.shape(batch)[1] - WINDOW_FRAMES + 1, dtype=tf.int32)
    index = offsets[:, None] + tf.range(WINDOW_FRAMES)[None, :]
    return tf.gather(batch, index, batch_dims=1)


def random_gain_and_noise(batch: tf.Tensor) -> tf.Tensor:
    """Gain is an offset in dB; noise is added in the power domain at a random SNR, with a random
    spectral tilt and a little per-bin fluctuation, on about half of the samples."""
    size, frames, bands = tf.shape(batch)[0], tf.shape(batch)[1], tf.shape(batch)[2]
    gain = tf.random.uniform([size, 1, 1, 1], -GAIN_DB, GAIN_DB)
    x = tf.maximum(batch + gain, FLOOR_DB)
    level = tf.reduce_max(tf.reduce_mean(x, axis=2, keepdims=True), axis=1, keepdims=True)
    snr = tf.random.uniform([size, 1, 1, 1], *SNR_DB)
    tilt = tf.random.uniform([size, 1, 1, 1], -10.0, 10.0) * tf.reshape(
        tf.linspace(-0.5, 0.5, bands), [1, 1, -1, 1])
    noise_db = level - snr + tilt + tf.random.normal([size, frames, bands, 1], stddev=2.0)
    noisy = 10.0 * tf.math.log(tf.pow(10.0, x / 10.0) + tf.pow(10.0, noise_db / 10.0)) / tf.math.log(10.0)
    use = tf.random.uniform([size, 1, 1, 1]) < NOISE_PROBABILITY
    return tf.where(use, noisy, x)


def _resample_axis(batch: tf.Tensor, positions: tf.Tensor, axis: int) -> tf.Tensor:
    """Linear interpolation of a (B, T, bands, 1) batch along `axis` at per-sample fractional
    `positions` (B, n), clipped to the axis."""
    last = tf.cast(tf.shape(batch)[axis] - 1, tf.float32)
    positions = tf.clip_by_value(positions, 0.0, last)
    low = tf.floor(positions)
    high = tf.minimum(low + 1.0, last)
    share = positions - low
    shape = [-1, 1, 1, 1]
    shape[axis] = tf.shape(positions)[1]
    share = tf.reshape(share, shape)
    take = lambda index: tf.gather(batch, tf.cast(index, tf.int32), axis=axis, batch_dims=1)  # noqa: E731
    return take(low) * (1.0 - share) + take(high) * share


def speaker_warp(batch: tf.Tensor, probability: float) -> tf.Tensor:
    """Another speaker saying it: on a share of the (B, T, bands, 1) crops, the mel-band axis is
    scaled by up to +-WARP_BANDS from band 0 (a longer or shorter vocal tract moves every formant
    by the same factor; vocal-tract-length perturbation, Jaitly & Hinton 2013) and the time axis by
    up to +-WARP_TEMPO about the crop's centre (a faster or slower talker): voices the model has not
    heard, against the memorising of its 16 training speakers that `mixup` describes."""
    size, frames, bands = tf.shape(batch)[0], tf.shape(batch)[1], tf.shape(batch)[2]
    band_scale = tf.random.uniform([size, 1], 1.0 - WARP_BANDS, 1.0 + WARP_BANDS)
    tempo = tf.random.uniform([size, 1], 1.0 - WARP_TEMPO, 1.0 + WARP_TEMPO)
    centre = tf.cast(frames - 1, tf.float32) / 2.0
    times = centre + (tf.range(frames, dtype=tf.float32)[None, :] - centre) * tempo
    warped = _resample_axis(batch, times, axis=1)
    warped = _resample_axis(warped, tf.range(bands, dtype=tf.float32)[None, :] * band_scale, axis=2)
    use = tf.random.uniform([size, 1, 1, 1]) < probability
    return tf.where(use, warped, batch)


def _power_level_db(power: tf.Tensor) -> tf.Tensor:
    """Mean power of each (B, T, bands, 1) sample in dB: the level an SNR is stated against."""
    return 10.0 * tf.math.log(tf.reduce_mean(power, axis=[1, 2, 3], keepdims=True)) / tf.math.log(10.0)


def babble(batch: tf.Tensor, probability: float, snr_db: tuple[float, float] = BABBLE_SNR_DB) -> tf.Tensor:
    """Other people talking underneath: on a share of the samples, add 1 to BABBLE_TALKERS other
    clips of the same batch (each with its own random crop and emotion), each brought to the same
    level and together to a random SNR below this sample's level, in the power domain
    (10*log10(10^(a/10) + 10^((b - shift)/10))). The label stays the sample's own: the model
    learns to follow the loudest voice, as the daemon must with people talking nearby, and speech
    is a noise whose spectrum and rhythm the synthetic noise floor does not have."""
    size = tf.shape(batch)[0]
    power = tf.pow(10.0, batch / 10.0)
    level = _power_level_db(power)
    talkers = tf.random.uniform([size, 1, 1, 1], 1, BABBLE_TALKERS + 1, dtype=tf.int32)
    mixture = tf.zeros_like(power)
    for k in range(1, BABBLE_TALKERS + 1):
        other = tf.roll(power, shift=k, axis=0) / tf.pow(10.0, tf.roll(level, shift=k, axis=0) / 10.0)
        mixture += tf.where(talkers >= k, other, tf.zeros_like(other))
    snr = tf.random.uniform([size, 1, 1, 1], *snr_db)
    target = level - snr - _power_level_db(mixture)
    noisy = 10.0 * tf.math.log(power + mixture * tf.pow(10.0, target / 10.0)) / tf.math.log(10.0)
    use = tf.random.uniform([size, 1, 1, 1]) < probability
    return tf.where(use, tf.maximum(noisy, FLOOR_DB), batch)


def spec_augment(batch: tf.Tensor) -> tf.Tensor:
    """SpecAugment-style masks: a few random bands and frame spans set to the sample's mean."""
    size, frames, bands = tf.shape(batch)[0], tf.shape(batch)[1], tf.shape(batch)[2]
    keep = tf.ones_like(batch, dtype=tf.bool)
    for axis_len, masks, widest, shape in ((bands, FREQ_MASKS, FREQ_MASK_BANDS, [size, 1, -1, 1]),
                                           (frames, TIME_MASKS, TIME_MASK_FRAMES, [size, -1, 1, 1])):
        positions = tf.range(axis_len)[None, :]
        for _ in range(masks):
            width = tf.random.uniform([size, 1], 0, widest + 1, dtype=tf.int32)
            start = tf.random.uniform([size, 1], 0, axis_len - widest, dtype=tf.int32)
            inside = (positions >= start) & (positions < start + width)
            keep &= tf.reshape(~inside, shape)
    mean = tf.reduce_mean(batch, axis=[1, 2, 3], keepdims=True)
    return tf.where(keep, batch, mean)


def augment(batch: tf.Tensor) -> tf.Tensor:
    return spec_augment(random_gain_and_noise(random_time_crop(batch)))


def make_augment(babble_probability: float = 0.0, babble_snr_db: tuple[float, float] = BABBLE_SNR_DB,
                 warp_probability: float = 0.0):
    """The shipped `augment`, or the same chain with warped speakers (before the time crop, whose
    slack the tempo change uses) and babble after the crop (before gain, noise floor and masks,
    which then apply to the mixture as a microphone would give it)."""
    if babble_probability <= 0 and warp_probability <= 0:
        return augment

    def chain(batch: tf.Tensor) -> tf.Tensor:
        if warp_probability > 0:
            batch = speaker_warp(batch, warp_probability)
        batch = random_time_crop(batch)
        if babble_probability > 0:
            batch = babble(batch, babble_probability, babble_snr_db)
        return spec_augment(random_gain_and_noise(batch))

    return chain


def centre_window(batch: np.ndarray) -> np.ndarray:
    """The middle WINDOW_FRAMES of each (T, bands, 1) crop: the un-augmented model input."""
    start = (batch.shape[1] - WINDOW_FRAMES) // 2
    return batch[:, start:start + WINDOW_FRAMES]


def voice_task(data: str, train_actors: str, val_actors: str, seed: int, babble_probability: float = 0.0,
               babble_snr_db: tuple[float, float] = BABBLE_SNR_DB, mixup_alpha: float = 0.0,
               warp_probability: float = 0.0, watch_only: bool = False) -> Task:
    """`watch_only`: nothing will be selected on the validation split (a fixed schedule keeping its
    last epoch), so it may share actors with training: the shipped model, once its recipe was
    chosen by cross-validation, trains on every actor there is."""
    train_clips, val_clips = find_clips(data, train_actors), find_clips(data, val_actors)
    shared = {c.name.actor for c in train_clips} & {c.name.actor for c in val_clips}
    if shared and not watch_only:
        raise DataError(f"actors {sorted(shared)} are in both the training and the validation split; "
                        "choose disjoint --train-actors and --val-actors (speaker-independent protocol), "
                        "or --keep last to train on them with validation only watched")
    x_train = np.stack([speech_crop(read_clip(c)) for c in train_clips])[..., None]
    val = window_set(val_clips)
    voiced = val.weights > 0
    x_val = val.features[voiced][..., None]

    def evaluate(model) -> tuple[np.ndarray, np.ndarray]:
        return val.labels, val.predict_clips(model)

    return Task(
        labels=VOICE_LABELS,
        x_train=x_train, y_train=clip_labels(train_clips),
        x_val=x_val, y_val=val.labels[val.clip_index[voiced]],
        augment=make_augment(babble_probability, babble_snr_db, warp_probability),
        mix=(lambda x, y, w: mixup(x, y, w, mixup_alpha)) if mixup_alpha > 0 else None,
        evaluate=evaluate,
        clean=centre_window,
        description={"train": f"{data} actors {train_actors} ({len(train_clips)} clips)",
                     "val": f"{data} actors {val_actors} ({len(val_clips)} clips, per-clip scores "
                            f"from {len(val.features)} windows)",
                     "protocol": ("validation actors also trained on: the curve is watched only, nothing "
                                  "selected on it" if shared else
                                  "speaker-independent; window accuracy in training, clip accuracy here"),
                     # The converter reads this to label its check a fit, not an estimate.
                     **({"validation_seen_in_training": True} if shared else {})},
    )
