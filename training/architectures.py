"""Model builders: one function per architecture, each returning an uncompiled Keras model.

Every face model takes raw grey pixels (0..255, shape (48, 48, 1)) and normalises inside, so
int8 conversion folds the scaling into the input quantization and the device feeds
`pixel - 128` straight from the equalized crop. Every model ends in softmax.
"""

from __future__ import annotations

import keras
from keras import layers, regularizers

from device.runtime.labels import FACE_LABELS
from device.vision.preprocessing import FACE_SIZE


def _pixels_in(shape: tuple[int, ...], name: str) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    inputs = keras.Input(shape=shape, name=name)
    return inputs, layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalise")(inputs)


def _conv_bn_relu(x, filters: int, kernel: int = 3, strides: int = 1, padding: str = "same",
                  l2: float = 0.0, name: str = ""):
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False,
                      kernel_regularizer=regularizers.l2(l2) if l2 else None, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _separable_bn(x, filters: int, name: str, l2: float = 0.0, gamma: str = "ones"):
    x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False,
                               depthwise_regularizer=regularizers.l2(l2) if l2 else None,
                               pointwise_regularizer=regularizers.l2(l2) if l2 else None,
                               name=f"{name}_sep")(x)
    return layers.BatchNormalization(gamma_initializer=gamma, name=f"{name}_bn")(x)


def _identity_module(x, filters: int, name: str, l2: float = 0.0):
    """A module without downsampling: x + BN(sep(ReLU(BN(sep(x))))). The last batch norm starts
    with zero gain, so a model grown by inserting these computes exactly what it computed before
    and can be warm-started from the smaller model's weights."""
    y = _separable_bn(x, filters, f"{name}_a", l2)
    y = layers.ReLU(name=f"{name}_a_relu")(y)
    y = _separable_bn(y, filters, f"{name}_b", l2, gamma="zeros")
    return layers.Add(name=f"{name}_add")([x, y])


def mini_xception(num_classes: int = len(FACE_LABELS), input_size: int = FACE_SIZE,
                  width: float = 1.0, l2: float = 0.0,
                  extra_blocks: tuple[int, int, int, int] = (0, 0, 0, 0)) -> keras.Model:
    """Arriaga et al. (2017) mini-Xception: two 3x3 stem convolutions, four residual modules of
    two depthwise-separable 3x3 convolutions with batch norm and a strided max-pool beside a
    1x1 strided shortcut, then a 3x3 convolution to one map per class and global average
    pooling (no dense layer). width=1.0 gives about 58k parameters; `width` scales every layer.
    `extra_blocks[i]` identity modules follow module i+1: depth where parameters are cheap
    (the early, narrow stages), since the last module already holds most of the budget.
    """
    stem = max(4, round(8 * width))
    inputs, x = _pixels_in((input_size, input_size, 1), "face")
    x = _conv_bn_relu(x, stem, padding="valid", l2=l2, name="stem1")
    x = _conv_bn_relu(x, stem, padding="valid", l2=l2, name="stem2")
    for i, base in enumerate((16, 32, 64, 128), start=1):
        filters = max(4, round(base * width))
        shortcut = layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False,
                                 name=f"module{i}_shortcut_conv")(x)
        shortcut = layers.BatchNormalization(name=f"module{i}_shortcut_bn")(shortcut)
        x = _separable_bn(x, filters, f"module{i}_a", l2)
        x = layers.ReLU(name=f"module{i}_a_relu")(x)
        x = _separable_bn(x, filters, f"module{i}_b", l2)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"module{i}_pool")(x)
        x = layers.Add(name=f"module{i}_add")([x, shortcut])
        for j in range(1, extra_blocks[i - 1] + 1):
            x = _identity_module(x, filters, f"module{i}_extra{j}", l2)
    x = layers.Conv2D(num_classes, 3, padding="same", name="class_maps")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Softmax(name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mini_xception")


def ds_cnn(num_classes: int = len(FACE_LABELS), input_size: int = FACE_SIZE,
           width: float = 1.0, dropout: float = 0.2) -> keras.Model:
    """MobileNet-style stack of depthwise-separable blocks (depthwise 3x3 + BN + ReLU6, then
    pointwise 1x1 + BN + ReLU6). It downsamples early (one full conv, then a strided block), so
    it does fewer multiply-adds per face than mini-Xception at about the same parameter count.
    """
    def ds_block(x, filters: int, strides: int, name: str):
        x = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False,
                                   name=f"{name}_dw")(x)
        x = layers.BatchNormalization(name=f"{name}_dw_bn")(x)
        x = layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
        x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
        x = layers.BatchNormalization(name=f"{name}_pw_bn")(x)
        return layers.ReLU(6.0, name=f"{name}_pw_relu")(x)

    def w(filters: int) -> int:
        return max(8, round(filters * width))

    inputs, x = _pixels_in((input_size, input_size, 1), "face")
    x = _conv_bn_relu(x, w(24), name="stem")
    plan = ((32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (128, 1), (192, 2))
    for i, (filters, strides) in enumerate(plan, start=1):
        x = ds_block(x, w(filters), strides, f"block{i}")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    outputs = layers.Softmax(name="probabilities")(x)
    return keras.Model(inputs, outputs, name="ds_cnn")


def vgg_teacher(num_classes: int = len(FACE_LABELS), input_size: int = FACE_SIZE,
                width: float = 1.0, stage_dropout: tuple[float, float, float, float] = (0.1, 0.1, 0.2, 0.2),
                dropout: float = 0.4) -> keras.Model:
    """A plain VGG-style face model, about 1.2M parameters at width 1: never shipped to the Pi,
    only a distillation teacher (`--teacher`) for the small students, so it spends parameters
    and multiply-adds (about 120M per face) where the students cannot. Four stages of two full
    3x3 convolutions with batch norm and ReLU (32, 64, 128, 256 filters), each closed by a 2x2
    max-pool (48 -> 24 -> 12 -> 6 -> 3) and dropout rising with depth, where the wide late
    stages would otherwise memorise the 28k training faces. Full convolutions, not separable
    ones: with no size limit, the plain VGG recipe is the well-trodden one for FER2013. Global
    average pooling over the 3x3 map and a small dense head (128 units, dropout) keep the head
    cheap, so the parameters sit in the convolutions that read the face.
    """
    def w(filters: int) -> int:
        return max(8, round(filters * width))

    inputs, x = _pixels_in((input_size, input_size, 1), "face")
    for i, (filters, rate) in enumerate(zip((32, 64, 128, 256), stage_dropout, strict=True), start=1):
        x = _conv_bn_relu(x, w(filters), name=f"stage{i}_a")
        x = _conv_bn_relu(x, w(filters), name=f"stage{i}_b")
        x = layers.MaxPooling2D(2, name=f"stage{i}_pool")(x)
        if rate:
            x = layers.Dropout(rate, name=f"stage{i}_dropout")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(w(128), name="head")(x)
    x = layers.ReLU(name="head_relu")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    outputs = layers.Softmax(name="probabilities")(x)
    return keras.Model(inputs, outputs, name="vgg_teacher")


def _attention_over_time(x, hidden: int):
    """(time, bands, channels) -> (channels,): the bands averaged, then the time steps summed with
    softmax weights scored from each step's features. Only 1x1 convolutions, a softmax and a
    multiply, which full-integer int8 TFLite keeps on its integer kernels."""
    steps = x.shape[1]
    x = layers.AveragePooling2D(pool_size=(1, x.shape[2]), name="band_average")(x)
    score = layers.Conv2D(hidden, 1, activation="tanh", name="attention_hidden")(x)
    score = layers.Conv2D(1, 1, name="attention_score")(score)
    weight = layers.Softmax(axis=1, name="attention_weight")(score)
    x = layers.Multiply(name="attention_weighted")([x, weight])
    # The weights sum to 1, so the weighted sum is itself an average of the steps and stays in the
    # plain average's range, which the int8 calibration of the dense layer after relies on.
    x = layers.GlobalAveragePooling2D(name="attention_pool")(x)
    return layers.Rescaling(float(steps), name="attention_sum")(x)


def _without_band_tilt(x):
    """Each mel band's mean over the window subtracted, the window's mean over all bands added
    back: what a speaker's vocal tract and a microphone's response add to every frame of a band
    (a fixed spectral tilt) cancels, while the window's overall level, which carries emotion, stays.
    Two average poolings, a subtraction and an addition, all on int8 kernels."""
    band_mean = layers.AveragePooling2D(pool_size=(x.shape[1], 1), name="band_mean")(x)
    level = layers.GlobalAveragePooling2D(keepdims=True, name="window_level")(band_mean)
    x = layers.Subtract(name="band_centred")([x, band_mean])
    return layers.Add(name="band_tilt_removed")([x, level])


def voice_cnn(num_classes: int = 8, width: float = 1.0, dropout: float = 0.3,
              frames: int | None = None, bands: int | None = None, pooling: str = "average",
              band_norm: str = "none") -> keras.Model:
    """Compact CNN on one log-mel window (dB values in, normalised inside like the face models).

    Two full 3x3 convolutions read the fine time-frequency detail (pitch harmonics, formant
    moves); depthwise-separable blocks follow once 2x2 pooling has shrunk the map, which keeps
    multiply-adds and parameters small. Global average pooling over time and frequency makes the
    score depend on what is said how, not where in the window. About 60k parameters at width 1.

    `pooling="attention"` weighs the time steps instead of averaging them: a 2 s window holds pauses
    and unvoiced stretches that carry little emotion, and a learned score per step (a small tanh
    layer, softmax over time) lets the voiced ones count more. Uniform weights are the plain average,
    so the model can fall back on it; about 2k parameters more.

    `band_norm="window-mean"` removes each band's mean over the window but keeps the overall level
    (`_without_band_tilt`): per-utterance normalisation inside the graph, so the device's features
    and code stay as they are. No parameters.
    """
    from device.audio.log_mel import N_MELS, WINDOW_FRAMES

    def w(filters: int) -> int:
        return max(8, round(filters * width))

    inputs = keras.Input(shape=(frames or WINDOW_FRAMES, bands or N_MELS, 1), name="log_mel")
    x = layers.Rescaling(1.0 / 20.0, offset=3.5, name="normalise")(inputs)  # (dB + 70) / 20
    if band_norm == "window-mean":
        x = _without_band_tilt(x)
    elif band_norm != "none":
        raise ValueError(f"band_norm {band_norm!r}: expected 'none' or 'window-mean'")
    x = _conv_bn_relu(x, w(24), name="conv1")
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = _conv_bn_relu(x, w(32), name="conv2")
    x = layers.MaxPooling2D(2, name="pool2")(x)
    for i, (filters, pool) in enumerate(((64, True), (96, True), (128, False), (160, False)), start=3):
        x = _separable_bn(x, w(filters), f"block{i}")
        x = layers.ReLU(name=f"block{i}_relu")(x)
        if pool:
            x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    if pooling == "attention":
        x = _attention_over_time(x, w(8))
    elif pooling == "average":
        x = layers.GlobalAveragePooling2D(name="gap")(x)
    else:
        raise ValueError(f"pooling {pooling!r}: expected 'average' or 'attention'")
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    outputs = layers.Softmax(name="probabilities")(x)
    return keras.Model(inputs, outputs, name="voice_cnn")


def face_gate(num_classes: int = 2, input_size: int = FACE_SIZE, width: float = 1.0) -> keras.Model:
    """The face gate: is this 48x48 equalized crop a face at all? (not_face, face) in softmax.

    Haar's false positives are textures and edges that pass a cascade of rectangle features; telling
    them from a face framed the FER2013 way needs only coarse structure (eyes, brows, mouth against
    the cheeks), so the gate downsamples at every layer: a strided 3x3 convolution, then three
    strided depthwise-separable blocks (48 -> 24 -> 12 -> 6 -> 3), global average pooling and one
    dense layer. About 3.3k parameters and 0.3M multiply-adds at width 1: a few hundredths of
    a millisecond per crop, paid only for a detection that would start a new track.
    """
    def w(filters: int) -> int:
        return max(4, round(filters * width))

    inputs, x = _pixels_in((input_size, input_size, 1), "face")
    x = _conv_bn_relu(x, w(8), strides=2, name="stem")
    for i, filters in enumerate((16, 32, 48), start=1):
        x = _separable_bn(x, w(filters), f"block{i}")
        x = layers.ReLU(name=f"block{i}_relu")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(num_classes, name="logits")(x)
    outputs = layers.Softmax(name="probabilities")(x)
    return keras.Model(inputs, outputs, name="face_gate")


BUILDERS = {"mini_xception": mini_xception, "ds_cnn": ds_cnn, "vgg_teacher": vgg_teacher,
            "voice_cnn": voice_cnn, "face_gate": face_gate}
