"""Saliency pictures: which parts of a face, or of a log-mel window, drive each class.

    python -m training.saliency --model CKPT.keras --data PATH [--usage PublicTest | --actors 17-20]
        --out DIR [--per-class N] [--summary-per-class M] [--seed S] [--cam-layer NAME]

Two maps, both of the class score before the softmax (the logit):

- guided back-propagation (Springenberg et al. 2015, the source systems' method): the gradient
  of the logit with respect to the input, where every ReLU passes a gradient back only where its
  input was positive (as an ordinary ReLU does) and the gradient arriving from above is positive.
  The model is cloned with a guided ReLU (a `tf.custom_gradient`) in place of each ReLU, ReLU6
  and `activation="relu"`, sharing the trained weights; the forward pass is unchanged.
- Grad-CAM (Selvaraju et al. 2017): the feature maps of one convolutional layer weighted by their
  spatially averaged gradients, summed, ReLU, resized to the input. The default layer is the
  deepest feature map of at least 32 cells (so the map has some resolution; the face models' last
  maps are 3x3) through which every path from the input to the output passes (a module's output,
  not one branch of it).

Inputs are preprocessed as the model was trained: faces equalized, 48x48, raw 0..255; voice the
log-mel of the clip's speech crop, centre window (`training.voice_task`'s clean input). For a
fixed, seeded sample of validation samples of each class it writes `<class>.png` (rows: samples;
columns: input, guided back-propagation, Grad-CAM over the input, guided Grad-CAM over the input),
`summary.png` (per class, the average of each map over up to --summary-per-class samples, each
sample's map normalised to unit mass), `saliency.json` (the same as region shares) and
`saliency.md` (an index; a training report in the folder above links it). A grid of validation
faces shows dataset faces: keep it in a run folder (runs/ is not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import matplotlib
import numpy as np
import tensorflow as tf

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from device.runtime.labels import FACE_LABELS
from device.vision.preprocessing import FACE_SIZE
from training.data_errors import DataError

MIN_CAM_CELLS = 32
FACE_REGIONS = {  # rows of a FER2013 48x48 crop (faces are roughly aligned, not exactly)
    "brows and eyes (rows 0-23)": (slice(0, 24), slice(None)),
    "nose and cheeks (rows 24-31)": (slice(24, 32), slice(None)),
    "mouth and chin (rows 32-47)": (slice(32, 48), slice(None)),
}
VOICE_BANDS_HZ = ((0.0, 500.0), (500.0, 2000.0), (2000.0, 8000.0))


class SaliencyError(Exception):
    """A checkpoint or data set that cannot be used; the message is one line for the user."""


# --- guided back-propagation -------------------------------------------------------------------

def guided_relu(x: tf.Tensor, max_value: float | None = None, threshold: float = 0.0) -> tf.Tensor:
    """ReLU (optionally capped, e.g. ReLU6) forward; backward, the gradient passes only where the
    input was in the ReLU's linear range and the incoming gradient is positive."""

    @tf.custom_gradient
    def _guided(inputs):
        outputs = tf.where(inputs > threshold, inputs, tf.zeros_like(inputs))  # keras.layers.ReLU's forward
        if max_value is not None:
            outputs = tf.minimum(outputs, tf.cast(max_value, inputs.dtype))

        def grad(upstream):
            open_ = inputs > threshold
            if max_value is not None:
                open_ &= inputs < max_value
            return upstream * tf.cast(open_ & (upstream > 0), upstream.dtype)

        return outputs, grad

    return _guided(x)


class GuidedReLU(keras.layers.Layer):
    """Stands in for a ReLU layer (or a layer's relu activation) in the guided clone."""

    def __init__(self, max_value: float | None = None, threshold: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_value = None if max_value is None else float(max_value)
        self.threshold = float(threshold)

    def call(self, inputs):
        return guided_relu(inputs, self.max_value, self.threshold)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "max_value": self.max_value, "threshold": self.threshold}


def _is_relu(function) -> bool:
    return getattr(function, "__name__", "") == "relu"


def _is_softmax(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.layers.Softmax) or (
        isinstance(layer, keras.layers.Activation) and getattr(layer.activation, "__name__", "") == "softmax")


def logits_model(model: keras.Model, guided: bool = False) -> keras.Model:
    """The model up to the class scores before its final softmax; with `guided`, a clone whose ReLUs
    are guided ReLUs. Layers other than ReLUs are shared, so the weights are the trained ones."""
    replaced: dict[str, keras.layers.Layer] = {}  # original name -> linear copy (activation split off)

    def clone_layer(layer):
        if not guided:
            return layer
        if isinstance(layer, keras.layers.ReLU):
            if layer.negative_slope:
                raise SaliencyError(f"layer {layer.name!r} is a leaky ReLU; guided back-propagation "
                                    "needs plain ReLUs")
            return GuidedReLU(layer.max_value, layer.threshold, name=layer.name)
        activation = getattr(layer, "activation", None)
        if _is_relu(activation):
            config = {**layer.get_config(), "activation": "linear"}
            if isinstance(layer, keras.layers.Activation):
                return GuidedReLU(name=layer.name)
            copy = layer.__class__.from_config(config)
            replaced[layer.name] = copy
            return copy
        return layer

    def call_layer(layer, *args, **kwargs):
        outputs = layer(*args, **kwargs)
        if any(layer is copy for copy in replaced.values()):
            outputs = GuidedReLU(name=f"{layer.name}_guided")(outputs)
        return outputs

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise SaliencyError(f"{model.name}: saliency needs a model with one input and one output")
    inputs, last = model.inputs[0], model.layers[-1]
    if _is_softmax(last):
        source = keras.Model(inputs, last.input, name=f"{model.name}_logits")
    elif getattr(getattr(last, "activation", None), "__name__", "") == "softmax":
        raise SaliencyError(f"the output layer {last.name!r} folds its softmax into itself; saliency "
                            "needs the class scores before the softmax (end the model with a Softmax layer)")
    else:
        source = keras.Model(inputs, model.outputs[0], name=f"{model.name}_scores")
    if not guided:
        return source
    clone = keras.models.clone_model(source, clone_function=clone_layer, call_function=call_layer)
    for name, copy in replaced.items():
        copy.set_weights(model.get_layer(name).get_weights())
    return clone


def _batches(x: np.ndarray, classes: np.ndarray, size: int):
    """(inputs, classes, real rows) in batches of exactly `size`, the last one padded by repeating its
    final sample: oneDNN's convolution filter gradient here crashes (segfault) on some odd batch
    sizes such as 3, and tf.GradientTape always computes it, so every batch has the one known-good
    size."""
    for start in range(0, len(x), size):
        stop = min(len(x), start + size)
        pad = ((0, size - (stop - start)),)
        yield (tf.convert_to_tensor(np.pad(x[start:stop], pad + ((0, 0),) * (x.ndim - 1), mode="edge")),
               np.pad(classes[start:stop], pad, mode="edge"), stop - start)


def _class_scores(logits: tf.Tensor, classes: np.ndarray) -> tf.Tensor:
    return tf.reduce_sum(logits * tf.one_hot(classes, logits.shape[-1], dtype=logits.dtype))


def guided_backprop(model: keras.Model, x: np.ndarray, classes, batch_size: int = 64,
                    guided: keras.Model | None = None) -> np.ndarray:
    """(N, H, W) gradient of each sample's class logit through guided ReLUs, summed over channels."""
    guided = guided or logits_model(model, guided=True)
    x = np.asarray(x, dtype=np.float32)
    classes = np.broadcast_to(np.asarray(classes, dtype=np.int64), (len(x),))
    maps = [np.zeros((0, *x.shape[1:3]), np.float32)]
    for batch, batch_classes, real in _batches(x, classes, batch_size):
        with tf.GradientTape() as tape:
            tape.watch(batch)
            score = _class_scores(guided(batch, training=False), batch_classes)
        maps.append(tape.gradient(score, batch).numpy().sum(axis=-1)[:real])
    return np.concatenate(maps)


# --- Grad-CAM -----------------------------------------------------------------------------------

def _parents(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    if isinstance(layer, keras.layers.InputLayer):
        return []
    return [t._keras_history.operation for t in keras.tree.flatten(layer.input)]


def _reaches_input_without(output_layer, banned) -> bool:
    stack, seen = [output_layer], set()
    while stack:
        layer = stack.pop()
        if layer is banned or id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, keras.layers.InputLayer):
            return True
        stack.extend(_parents(layer))
    return False


def default_cam_layer(model: keras.Model, min_cells: int = MIN_CAM_CELLS) -> str:
    """The deepest layer with a (H, W, C) output of at least `min_cells` cells that every path from
    the input to the output passes through; the deepest (H, W, C) layer if none is that large."""
    spatial = [layer for layer in model.layers
               if not isinstance(layer, keras.layers.InputLayer) and len(layer.output.shape) == 4]
    if not spatial:
        raise SaliencyError(f"{model.name} has no convolutional feature map for Grad-CAM")
    output_layer = model.layers[-1]
    for layer in reversed(spatial):
        height, width = layer.output.shape[1:3]
        if height * width >= min_cells and not _reaches_input_without(output_layer, layer):
            return layer.name
    return spatial[-1].name


def cam_probe(model: keras.Model, layer: str | None = None) -> keras.Model:
    """input -> (feature maps of `layer` (default `default_cam_layer`), class logits)."""
    name = layer or default_cam_layer(model)
    try:
        features = model.get_layer(name).output
    except ValueError:
        raise SaliencyError(f"{model.name} has no layer {name!r}") from None
    if len(features.shape) != 4:
        raise SaliencyError(f"layer {name!r} has output shape {features.shape}; Grad-CAM needs (H, W, C)")
    return keras.Model(model.inputs[0], [features, logits_model(model).outputs[0]])


def grad_cam(model: keras.Model, x: np.ndarray, classes, layer: str | None = None,
             batch_size: int = 64, probe: keras.Model | None = None) -> np.ndarray:
    """(N, H, W) Grad-CAM of each sample's class logit on `layer` (default `default_cam_layer`),
    resized (bilinear) to the input's height and width; non-negative."""
    probe = probe or cam_probe(model, layer)
    x = np.asarray(x, dtype=np.float32)
    classes = np.broadcast_to(np.asarray(classes, dtype=np.int64), (len(x),))
    height, width = x.shape[1:3]
    maps = [np.zeros((0, height, width), np.float32)]
    for batch, batch_classes, real in _batches(x, classes, batch_size):
        with tf.GradientTape() as tape:
            activations, logits = probe(batch, training=False)
            score = _class_scores(logits, batch_classes)
        grads = tape.gradient(score, activations)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1, keepdims=True))
        maps.append(tf.image.resize(cam, (height, width), method="bilinear").numpy()[:real, ..., 0])
    return np.concatenate(maps)


def mass_inside(saliency: np.ndarray, region: tuple[slice, slice]) -> np.ndarray:
    """Per sample, the share of the absolute map inside `region` (rows, columns)."""
    saliency = np.abs(np.asarray(saliency, dtype=np.float64))
    total = saliency.sum(axis=(1, 2))
    inside = saliency[(slice(None), *region)].sum(axis=(1, 2))
    return np.divide(inside, total, out=np.zeros_like(total), where=total > 0)


def class_dependence(maps_by_class: np.ndarray, labels: np.ndarray) -> float:
    """Mean correlation between a sample's |map| for its own class and for each other class, from
    (classes, N, H, W) maps: near 1 means the map shows where the model looks, whatever the class
    (guided back-propagation is known to behave much like an edge detector); lower means it says
    what speaks for this class rather than another."""
    flat = np.abs(maps_by_class.reshape(maps_by_class.shape[0], maps_by_class.shape[1], -1))
    values = []
    for n, own in enumerate(labels):
        for other in range(flat.shape[0]):
            if other != own and flat[own, n].std() > 0 and flat[other, n].std() > 0:
                values.append(np.corrcoef(flat[own, n], flat[other, n])[0, 1])
    return round(float(np.mean(values)), 3) if values else float("nan")


def unit_mass(saliency: np.ndarray) -> np.ndarray:
    saliency = np.abs(np.asarray(saliency, dtype=np.float64))
    total = saliency.sum(axis=(1, 2), keepdims=True)
    return np.divide(saliency, total, out=np.zeros_like(saliency), where=total > 0)


# --- data ----------------------------------------------------------------------------------------

@dataclass
class Samples:
    """Model inputs of one modality with their labels, and how to draw and describe them."""

    kind: str  # "face" or "voice"
    labels: tuple[str, ...]
    x: np.ndarray  # (N, H, W, 1) float32, as the model was trained on
    y: np.ndarray
    source: str
    ids: list[str] = field(default_factory=list)


def load_face_samples(data: str, usage: str) -> Samples:
    from device.vision.preprocessing import equalize_batch
    from training.fer_data import load_faces

    faces = load_faces(data, usage)
    x = equalize_batch(faces.faces)[..., None].astype(np.float32)
    return Samples("face", FACE_LABELS, x, faces.labels, faces.source,
                   [f"{usage} row {i}" for i in range(len(faces))])


def load_voice_samples(data: str, actors: str, wanted: Callable[[list], list] | None = None) -> Samples:
    """The centre window of each clip's speech crop (the voice task's clean input)."""
    from device.runtime.voice_labels import VOICE_LABELS
    from training.ravdess_data import find_clips, read_clip
    from training.voice_task import centre_window, speech_crop

    clips = find_clips(data, actors)
    if wanted is not None:
        clips = wanted(clips)
    crops = np.stack([speech_crop(read_clip(c)) for c in clips])[..., None]
    x = centre_window(crops).astype(np.float32)
    return Samples("voice", VOICE_LABELS, x, np.array([c.name.emotion for c in clips], dtype=np.int64),
                   f"{data} actors {actors} ({len(clips)} clips)", [c.path.name for c in clips])


def seeded_sample(labels: np.ndarray, num_classes: int, per_class: int, seed: int) -> dict[int, np.ndarray]:
    """Up to `per_class` indices of each class in a random order drawn with `seed` (the grids show
    the first few, the averages use them all)."""
    rng = np.random.default_rng(seed)
    picked = {}
    for label in range(num_classes):
        members = np.flatnonzero(labels == label)
        picked[label] = rng.permutation(members)[:per_class]
    return picked


# --- pictures ------------------------------------------------------------------------------------

def _scaled(saliency: np.ndarray) -> np.ndarray:
    """|map| / its 99th percentile, clipped to 0..1 (a few extreme pixels do not wash it out)."""
    magnitude = np.abs(saliency)
    top = np.percentile(magnitude, 99)
    return np.clip(magnitude / top, 0.0, 1.0) if top > 0 else magnitude


def _band_centres() -> np.ndarray:
    """Centre frequency (Hz) of each mel band of the device's log-mel."""
    from device.audio.log_mel import F_MAX, F_MIN, N_MELS, hz_to_mel, mel_to_hz

    return mel_to_hz(np.linspace(hz_to_mel(F_MIN), hz_to_mel(F_MAX), N_MELS + 2))[1:-1]


def _mel_ticks() -> tuple[list[int], list[str]]:
    centres = _band_centres()
    marks = [250, 500, 1000, 2000, 4000]
    bands = [int(np.argmin(np.abs(centres - hz))) for hz in marks]
    return bands, [f"{hz // 1000}k" if hz >= 1000 else str(hz) for hz in marks]


def _show(ax, image: np.ndarray, kind: str, cmap: str, vmin=None, vmax=None, alpha=None):
    """Faces as images; log-mel windows (frames, bands) with time across and frequency upwards."""
    if kind == "voice":
        from device.audio.log_mel import HOP_LENGTH, SAMPLE_RATE

        seconds = image.shape[0] * HOP_LENGTH / SAMPLE_RATE
        alpha = alpha.T if isinstance(alpha, np.ndarray) else alpha
        ax.imshow(image.T, origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha,
                  extent=(0.0, seconds, -0.5, image.shape[1] - 0.5), interpolation="nearest")
    else:
        ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha, interpolation="nearest")


def _style(ax, kind: str, first_column: bool, bottom_row: bool) -> None:
    if kind == "voice":
        bands, names = _mel_ticks()
        ax.set_yticks(bands, names if first_column else [""] * len(bands), fontsize=6)
        ax.tick_params(axis="x", labelsize=6, labelbottom=bottom_row)
        if first_column:
            ax.set_ylabel("Hz", fontsize=7)
        if bottom_row:
            ax.set_xlabel("s", fontsize=7)
    else:
        ax.set_xticks([])
        ax.set_yticks([])


def _background(samples: Samples, x: np.ndarray) -> tuple[np.ndarray, dict]:
    if samples.kind == "voice":
        return x, {"cmap": "viridis", "vmin": np.percentile(x, 1), "vmax": x.max()}
    return x, {"cmap": "gray", "vmin": 0, "vmax": 255}


def plot_class_grid(samples: Samples, label: int, rows: np.ndarray, guided: np.ndarray, cam: np.ndarray,
                    probs: np.ndarray, path: Path) -> None:
    """One row per sample: input, guided back-propagation, Grad-CAM over the input, and guided Grad-CAM
    (the guided map times the Grad-CAM, Selvaraju et al.: fine detail, but only where this class's
    evidence is) over the input."""
    kind = samples.kind
    wide = kind == "voice"
    cell_w, cell_h = (3.0, 1.35) if wide else (1.7, 1.7)
    fig, axes = plt.subplots(len(rows), 4, figsize=(4 * cell_w + 0.6, len(rows) * cell_h + 0.7),
                             squeeze=False)
    titles = ("input", "guided back-propagation", "Grad-CAM", "guided Grad-CAM over input")
    for r, index in enumerate(rows):
        x = samples.x[index, ..., 0]
        background, shown = _background(samples, x)
        g, c = _scaled(guided[r]), cam[r] / cam[r].max() if cam[r].max() > 0 else cam[r]
        _show(axes[r, 0], background, kind, **shown)
        _show(axes[r, 1], g, kind, "inferno", 0, 1)
        _show(axes[r, 2], background, kind, "gray", shown["vmin"], shown["vmax"])
        _show(axes[r, 2], c, kind, "jet", 0, 1, alpha=0.45)
        _show(axes[r, 3], background, kind, "gray", shown["vmin"], shown["vmax"])
        both = _scaled(guided[r] * c)
        _show(axes[r, 3], both, kind, "autumn", 0, 1, alpha=np.clip(both * 1.5, 0, 1))
        predicted = int(np.argmax(probs[r]))
        axes[r, 0].set_ylabel(f"pred {samples.labels[predicted]}\n{probs[r, predicted]:.2f}", fontsize=7)
        for col in range(4):
            _style(axes[r, col], kind, col == 0, r == len(rows) - 1)
            if r == 0:
                axes[r, col].set_title(titles[col], fontsize=8)
        if kind == "voice":
            axes[r, 0].set_ylabel(f"pred {samples.labels[predicted]} {probs[r, predicted]:.2f}\nHz",
                                  fontsize=7)
    fig.suptitle(f"class {samples.labels[label]!r}: maps of its logit ({len(rows)} validation samples)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_summary(samples: Samples, mean_guided: dict[int, np.ndarray], mean_cam: dict[int, np.ndarray],
                 counts: dict[int, int], path: Path) -> None:
    """Per class, the average guided map and average Grad-CAM (each sample normalised to unit mass);
    for voice also each map's share per mel band (summed over time)."""
    kind = samples.kind
    classes = [label for label in mean_guided if counts[label]]
    methods = (("guided", mean_guided), ("Grad-CAM", mean_cam))
    if kind == "face":
        fig, axes = plt.subplots(2, len(classes), figsize=(len(classes) * 1.7 + 0.6, 4.4), squeeze=False)
    else:
        fig, axes = plt.subplots(len(classes), 3, figsize=(10.5, len(classes) * 1.45 + 0.8), squeeze=False,
                                 gridspec_kw={"width_ratios": (3, 3, 2)})
    for i, label in enumerate(classes):
        name = f"{samples.labels[label]} (n={counts[label]})"
        for j, (method, maps) in enumerate(methods):
            ax = axes[j, i] if kind == "face" else axes[i, j]
            image = maps[label] / maps[label].max() if maps[label].max() > 0 else maps[label]
            _show(ax, image, kind, "inferno", 0, 1)
            if kind == "face":
                _style(ax, kind, False, False)
                if j == 0:
                    ax.set_title(name, fontsize=8)
                if i == 0:
                    ax.set_ylabel(method, fontsize=8)
            else:
                _style(ax, kind, j == 0, i == len(classes) - 1)
                if i == 0:
                    ax.set_title(method, fontsize=8)
                if j == 0:
                    ax.set_ylabel(f"{samples.labels[label]}\nHz", fontsize=7)
        if kind == "voice":
            ax, centres = axes[i, 2], _band_centres()
            for method, maps in methods:
                ax.plot(centres, maps[label].sum(axis=0), label=method)
            ax.axhline(1 / len(centres), color="grey", linestyle=":", linewidth=1, label="uniform")
            ax.set_xscale("log")
            ax.tick_params(labelsize=6, labelbottom=i == len(classes) - 1)
            ax.set_title("share per mel band" if i == 0 else "", fontsize=8)
            if i == 0:
                ax.legend(fontsize=6)
            if i == len(classes) - 1:
                ax.set_xlabel("Hz", fontsize=7)
    fig.suptitle("average saliency per class (each sample's map scaled to unit mass)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def region_shares(kind: str, maps: np.ndarray) -> dict[str, float]:
    """Share of a unit-mass average map in each named region (face rows; voice bands and thirds)."""
    if kind == "face":
        return {name: round(float(maps[region].sum()), 4) for name, region in FACE_REGIONS.items()}
    centres = _band_centres()
    shares = {}
    for low, high in VOICE_BANDS_HZ:
        bands = (centres >= low) & (centres < high)
        shares[f"{low:g}-{high:g} Hz ({int(bands.sum())} bands)"] = round(float(maps[:, bands].sum()), 4)
    thirds = np.array_split(np.arange(maps.shape[0]), 3)
    for name, frames in zip(("first", "middle", "last"), thirds, strict=True):
        shares[f"{name} third of the window"] = round(float(maps[frames].sum()), 4)
    return shares


def area_shares(kind: str, shape: tuple[int, int]) -> dict[str, float]:
    return region_shares(kind, np.full(shape, 1.0 / (shape[0] * shape[1])))


# --- the command ---------------------------------------------------------------------------------

def load_model(path: str) -> keras.Model:
    if not Path(path).is_file():
        raise SaliencyError(f"--model {path}: no such file; give a .keras checkpoint "
                            "(e.g. runs/<name>/best.keras)")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # a corrupt zip, a foreign file, a missing custom layer: all unusable
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise SaliencyError(f"--model {path}: not a readable Keras checkpoint ({reason})") from None


def model_kind(model: keras.Model) -> str:
    from device.audio.log_mel import N_MELS, WINDOW_FRAMES

    shape = tuple(model.input_shape[1:])
    if shape == (FACE_SIZE, FACE_SIZE, 1):
        return "face"
    if shape == (WINDOW_FRAMES, N_MELS, 1):
        return "voice"
    raise SaliencyError(f"{model.name}: input shape {shape} is neither a face ({FACE_SIZE}x{FACE_SIZE}x1) "
                        f"nor a log-mel window ({WINDOW_FRAMES}x{N_MELS}x1)")


def _predict(model: keras.Model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    probs = [np.zeros((0, model.output_shape[-1]), np.float32)]
    for batch, _, real in _batches(np.asarray(x, np.float32), np.zeros(len(x), np.int64), batch_size):
        probs.append(model(batch, training=False).numpy()[:real])
    return np.concatenate(probs)


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    model = load_model(args.model)
    kind = model_kind(model)
    if kind == "face" and args.actors:
        raise SaliencyError("--actors applies to voice models; this is a face model (use --usage)")
    if kind == "voice" and args.usage:
        raise SaliencyError("--usage applies to face models; this is a voice model (use --actors)")
    if kind == "face":
        samples = load_face_samples(args.data, args.usage or "PublicTest")
    else:
        samples = load_voice_samples(args.data, args.actors or "17-20")
    num_classes = len(samples.labels)
    if model.output_shape[-1] != num_classes:
        raise SaliencyError(f"{args.model}: {model.output_shape[-1]} outputs, but {kind} data has "
                            f"{num_classes} classes")
    cam_layer = args.cam_layer or default_cam_layer(model)
    guided_clone, probe = logits_model(model, guided=True), cam_probe(model, cam_layer)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    drawn = seeded_sample(samples.y, num_classes, max(args.summary_per_class, args.per_class), args.seed)
    mean_guided, mean_cam, counts, files, per_class = {}, {}, {}, {}, {}
    shape = samples.x.shape[1:3]
    for label in range(num_classes):
        name, chosen = samples.labels[label], drawn[label]
        counts[label] = len(chosen)
        guided = guided_backprop(model, samples.x[chosen], label, guided=guided_clone)
        cam = grad_cam(model, samples.x[chosen], label, probe=probe)
        mean_guided[label] = unit_mass(guided).mean(axis=0) if len(chosen) else np.zeros(shape)
        mean_cam[label] = unit_mass(cam).mean(axis=0) if len(chosen) else np.zeros(shape)
        per_class[name] = {"samples": len(chosen),
                           "guided": region_shares(kind, mean_guided[label]),
                           "grad_cam": region_shares(kind, mean_cam[label])}
        grid = slice(0, min(args.per_class, len(chosen)))  # the first of the seeded draw
        if not len(chosen):
            continue
        files[name] = f"{name}.png"
        plot_class_grid(samples, label, chosen[grid], guided[grid], cam[grid],
                        _predict(model, samples.x[chosen[grid]]), out / files[name])
        per_class[name]["grid_rows"] = [samples.ids[i] for i in chosen[grid]]
    plot_summary(samples, mean_guided, mean_cam, counts, out / "summary.png")
    shown = np.concatenate([drawn[label][:args.per_class] for label in range(num_classes)])
    every_class = [np.stack([method(c) for c in range(num_classes)]) for method in (
        lambda c: guided_backprop(model, samples.x[shown], c, guided=guided_clone),
        lambda c: grad_cam(model, samples.x[shown], c, probe=probe))]
    dependence = {name: class_dependence(maps, samples.y[shown]) for name, maps in (
        ("guided", every_class[0]), ("grad_cam", every_class[1]),
        ("guided_grad_cam", every_class[0] * every_class[1]))}
    result = {
        "command": "python -m training.saliency " + shlex.join(argv),
        "model": args.model, "kind": kind, "data": samples.source,
        "maps": {"guided": "guided back-propagation of the class logit (pre-softmax)",
                 "grad_cam": f"Grad-CAM of the class logit on layer {cam_layer!r}"},
        "input": ("equalized 48x48 grey face, raw 0..255" if kind == "face" else
                  "log-mel (dB) of the centre 2 s window of the clip's speech crop"),
        "seed": args.seed, "per_class": args.per_class, "summary_per_class": args.summary_per_class,
        "sample": "per class, a seeded random draw of up to summary_per_class samples; the grid shows "
                  "its first per_class",
        "class_dependence": {**dependence, "samples": len(shown),
                             "meaning": "mean correlation between a sample's |map| for its own class and "
                                        "for another class (1 = the map ignores the class)"},
        "area_shares": area_shares(kind, shape),
        "classes": per_class,
        "grids": files,
    }
    (out / "saliency.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "saliency.md").write_text(index_markdown(result))
    from training.reports import link_saliency

    link_saliency(out)
    return result


def index_markdown(result: dict) -> str:
    regions, dependence, grids = list(result["area_shares"]), result["class_dependence"], result["grids"]
    lines = [
        f"# Saliency: {Path(result['model']).name}", "",
        f"- data: {result['data']}",
        f"- input: {result['input']}",
        f"- maps: {result['maps']['guided']}; {result['maps']['grad_cam']}",
        f"- command: `{result['command']}`", "",
        "Per-class grids (rows: samples; columns: input, guided back-propagation, Grad-CAM, guided "
        "Grad-CAM over the input): " + ", ".join(f"[{name}]({file})" for name, file in grids.items()),
        "", f"Class dependence: a sample's map for its own class correlates with its map for another class "
        f"at r = {dependence['guided']:.2f} (guided), {dependence['grad_cam']:.2f} (Grad-CAM) and "
        f"{dependence['guided_grad_cam']:.2f} (guided Grad-CAM), over the "
        f"{dependence['samples']} grid samples (1 = the map ignores the class).",
        "", "Average maps: [summary.png](summary.png). Share of each class's average map (unit mass per "
        "sample) by region, guided / Grad-CAM; the last row is each region's share of the area:", "",
        "| class | n | " + " | ".join(regions) + " |",
        "| --- | --- | " + " | ".join("---" for _ in regions) + " |",
    ]
    for name, row in result["classes"].items():
        cells = [f"{row['guided'][r]:.2f} / {row['grad_cam'][r]:.2f}" for r in regions]
        lines.append(f"| {name} | {row['samples']} | " + " | ".join(cells) + " |")
    lines.append("| (area) | | " + " | ".join(f"{result['area_shares'][r]:.2f}" for r in regions) + " |")
    return "\n".join(lines) + "\n"


def _count(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a whole number of 1 or more")
    return int(value)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.saliency",
                                     description=__doc__.strip().splitlines()[0])
    parser.add_argument("--model", required=True, help="a .keras checkpoint (face or voice)")
    parser.add_argument("--data", required=True, help="FER2013 CSV[.gz] or image folder; RAVDESS folder")
    parser.add_argument("--usage", help="faces: the split to draw from (default PublicTest)")
    parser.add_argument("--actors", help="voice: RAVDESS actors to draw from (default 17-20)")
    parser.add_argument("--out", required=True, help="output folder (keep dataset pictures out of git)")
    parser.add_argument("--per-class", type=_count, default=6, help="rows of each class grid")
    parser.add_argument("--summary-per-class", type=_count, default=100,
                        help="samples per class behind the average maps and region shares")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cam-layer", help="Grad-CAM layer (default: deepest full-width map of >= 32 cells)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        result = run(args, argv)
    except (SaliencyError, DataError) as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2
    print(f"wrote {len(result['grids'])} class grids, summary.png and saliency.md to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
