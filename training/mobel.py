"""MoBEL: a mixture of BEL experts over the face and voice models' penultimate features.

Feature-level fusion from the source systems (system 4), trained and evaluated offline by
`python -m training.fusion_evaluation`; it would only move to `device/` if it beat the product
rule there. The equations are those of `../shared/reference/source-systems.md` (not the
write-up's code). With f = tansig = tanh, input p (n features scaled to [0, 1]) and the thalamic
input p_th = max_j p_j:

    expert k, class c   e_a = sum_j v_kcj p_j + v_kc,th p_th,   e_o = sum_j w_kcj p_j
                        E_kc = f(f(e_a) - f(e_o))
    gate unit k         a_k, o_k likewise over p;   G_k = f(f(a_k) - f(o_k))
    prior               g_k = (G_k + 1) / 2, normalised over k
    posterior           h_k = g_k exp(-||t - E_k||^2 / 2) / sum_j g_j exp(-||t - E_j||^2 / 2)
    output              y = sum_k g_k E_k      (decision: argmax_c y_c)
    experts             dv = -gamma v + alpha p max(0, t - f(e_a)),   dw = beta p (E - t)
    gates               dv_g = -gamma_g v_g + alpha_g p max(0, h_k - f(a_k)),   dw_g = beta_g p (g_k - h_k)

Three choices the equations leave open, made here and documented in docs/voice.md:
- the prior: a BEL unit's output lies in (-1, 1) (zero-initialised gates output 0), so g_k is the
  unit's output mapped to (0, 1) as the shipped BEL's scores are, (G_k + 1) / 2, and normalised
  over the experts; then h and the weights of y are distributions (y is a convex mix of experts);
- the start: experts begin with small random weights (seeded); from all-zero weights every expert
  would receive identical updates and stay identical forever;
- the experts' share of the error: "experts learn as above on t" read literally (weighting "none")
  or, as in a mixture of experts, each expert's step scaled by its posterior h_k ("posterior").
  Which one, K, the rates and the epoch count are chosen on training-side pairs only.

Features: the input of each model's last weighted layer, global-average-pooled when it is a map:
for mini-Xception the 3x3 maps before its class-map convolution (`class_maps`, then GAP, no dense
layer), for the voice CNN the GAP vector before its dense logits. Faces are averaged with their
mirror when flip TTA is on (as the daemon averages probabilities); a clip's voice features are the
VAD-weighted mean of its 2 s windows' features (as a clip's probabilities are scored).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from device.fusion.bel import tansig
from training.data_errors import DataError

WEIGHTINGS = ("posterior", "none")


@dataclass
class MobelResponse:
    experts: np.ndarray  # E, (batch, K, classes)
    expert_amygdala: np.ndarray  # e_a, (batch, K, classes)
    gate: np.ndarray  # G, raw gate unit outputs, (batch, K)
    gate_amygdala: np.ndarray  # a, (batch, K)
    prior: np.ndarray  # g, (batch, K), sums to 1
    output: np.ndarray  # y, (batch, classes)


def posterior(prior: np.ndarray, experts: np.ndarray, target: np.ndarray) -> np.ndarray:
    """h_k = g_k exp(-||t - E_k||^2 / 2) / sum_j g_j exp(-||t - E_j||^2 / 2), for (..., K) priors,
    (..., K, classes) expert outputs and (..., classes) targets."""
    distance = np.sum((target[..., None, :] - experts) ** 2, axis=-1)
    log_joint = np.log(np.maximum(prior, 1e-300)) - 0.5 * distance
    log_joint -= log_joint.max(axis=-1, keepdims=True)
    joint = np.exp(log_joint)
    return joint / joint.sum(axis=-1, keepdims=True)


class MoBEL:
    """v: (K, classes, n + 1) and w: (K, classes, n) expert weights (last column of v: thalamic);
    vg: (K, n + 1) and wg: (K, n) gate weights."""

    def __init__(self, v: np.ndarray, w: np.ndarray, vg: np.ndarray, wg: np.ndarray, alpha: float,
                 beta: float, gamma: float, alpha_g: float, beta_g: float, gamma_g: float,
                 weighting: str = "posterior") -> None:
        k, c, n = w.shape
        if v.shape != (k, c, n + 1) or vg.shape != (k, n + 1) or wg.shape != (k, n):
            raise ValueError(f"MoBEL weights do not fit together: v {v.shape}, w {w.shape}, vg {vg.shape}, "
                             f"wg {wg.shape}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting is one of {WEIGHTINGS}, not {weighting!r}")
        self.v, self.w = v.astype(np.float64), w.astype(np.float64)
        self.vg, self.wg = vg.astype(np.float64), wg.astype(np.float64)
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.alpha_g, self.beta_g, self.gamma_g = alpha_g, beta_g, gamma_g
        self.weighting = weighting

    @classmethod
    def new(cls, inputs: int, classes: int, experts: int = 4, alpha: float = 1e-3, beta: float = 1e-3,
            gamma: float = 1e-4, alpha_g: float | None = None, beta_g: float | None = None,
            gamma_g: float | None = None, weighting: str = "posterior", init_scale: float = 0.5,
            seed: int = 0) -> MoBEL:
        """Experts start small and random (amygdala non-negative, OFC signed; each unit's response to
        an all-ones input about `init_scale` in size), gates at zero (a uniform prior). Gate rates
        default to the experts'."""
        rng = np.random.default_rng(seed)
        v = rng.uniform(0.0, 2.0 * init_scale / inputs, (experts, classes, inputs + 1))
        w = rng.normal(0.0, init_scale / np.sqrt(inputs), (experts, classes, inputs))
        return cls(v, w, np.zeros((experts, inputs + 1)), np.zeros((experts, inputs)), alpha, beta, gamma,
                   alpha if alpha_g is None else alpha_g, beta if beta_g is None else beta_g,
                   gamma if gamma_g is None else gamma_g, weighting)

    @property
    def inputs(self) -> int:
        return self.w.shape[2]

    @property
    def experts(self) -> int:
        return self.w.shape[0]

    @property
    def classes(self) -> int:
        return self.w.shape[1]

    def respond(self, p: np.ndarray) -> MobelResponse:
        p = np.atleast_2d(np.asarray(p, dtype=np.float64))
        if p.shape[1] != self.inputs:
            raise ValueError(f"MoBEL takes {self.inputs} inputs, got {p.shape[1]}")
        thalamic = p.max(axis=1)
        e_a = np.einsum("bn,kcn->bkc", p, self.v[..., :-1]) + thalamic[:, None, None] * self.v[None, ..., -1]
        e_o = np.einsum("bn,kcn->bkc", p, self.w)
        experts = tansig(tansig(e_a) - tansig(e_o))
        a_g = p @ self.vg[:, :-1].T + thalamic[:, None] * self.vg[:, -1]
        gate = tansig(tansig(a_g) - tansig(p @ self.wg.T))
        prior = (gate + 1.0) / 2.0
        prior /= np.maximum(prior.sum(axis=1, keepdims=True), 1e-12)
        output = np.einsum("bk,bkc->bc", prior, experts)
        return MobelResponse(experts, e_a, gate, a_g, prior, output)

    def update(self, p: np.ndarray, target: np.ndarray) -> float:
        """One learning step on one sample (every quantity from the weights before the step);
        returns that sample's error sum_c (t_c - y_c)^2 before the step."""
        p = np.asarray(p, dtype=np.float64)
        target = np.asarray(target, dtype=np.float64)
        r = self.respond(p)
        experts, e_a, a_g, prior = r.experts[0], r.expert_amygdala[0], r.gate_amygdala[0], r.prior[0]
        h = posterior(prior, experts, target)
        share = h if self.weighting == "posterior" else np.ones(self.experts)
        thalamic = p.max()
        # experts: the BEL rules on the target t, each expert's step times its share
        drive = self.alpha * np.maximum(0.0, target[None, :] - tansig(e_a))  # (K, classes)
        self.v[..., :-1] += share[:, None, None] * (-self.gamma * self.v[..., :-1] + drive[..., None] * p)
        self.v[..., -1] += share[:, None] * (-self.gamma * self.v[..., -1] + drive * thalamic)
        self.w += share[:, None, None] * self.beta * (experts - target[None, :])[..., None] * p
        # gates: the same rules with the posterior h_k as target
        gate_drive = self.alpha_g * np.maximum(0.0, h - tansig(a_g))  # (K,)
        self.vg[:, :-1] += -self.gamma_g * self.vg[:, :-1] + gate_drive[:, None] * p
        self.vg[:, -1] += -self.gamma_g * self.vg[:, -1] + gate_drive * thalamic
        self.wg += self.beta_g * (prior - h)[:, None] * p
        return float(np.sum((target - r.output[0]) ** 2))

    def fit(self, p: np.ndarray, labels: np.ndarray, epochs: int = 10, seed: int = 0,
            after_epoch=None) -> list[float]:
        """Online learning over shuffled samples; returns the mean error of each epoch.
        `after_epoch(epoch, model)` is called after every epoch (for choosing the epoch count)."""
        targets = np.eye(self.classes)[np.asarray(labels)]
        rng = np.random.default_rng(seed)
        errors = []
        for epoch in range(1, epochs + 1):
            order = rng.permutation(len(p))
            errors.append(float(np.mean([self.update(p[i], targets[i]) for i in order])))
            if after_epoch is not None:
                after_epoch(epoch, self)
        return errors

    def scores(self, p: np.ndarray) -> np.ndarray:
        """y mapped from (-1, 1) to a distribution, (y + 1) / 2 normalised: same argmax as y, a ranking
        rather than a calibrated probability (as the shipped BEL's scores)."""
        positive = (self.respond(p).output + 1.0) / 2.0
        return positive / np.maximum(positive.sum(axis=1, keepdims=True), 1e-12)

    def save(self, path: str | Path) -> None:
        """npz of the weights and rates (tens of thousands of numbers: not for the repository)."""
        np.savez_compressed(path, v=self.v, w=self.w, vg=self.vg, wg=self.wg,
                            rates=np.array([self.alpha, self.beta, self.gamma, self.alpha_g, self.beta_g,
                                            self.gamma_g]), weighting=np.array(self.weighting))

    @classmethod
    def load(cls, path: str | Path) -> MoBEL:
        with np.load(path) as data:
            return cls(data["v"], data["w"], data["vg"], data["wg"], *map(float, data["rates"]),
                       weighting=str(data["weighting"]))


@dataclass
class FeatureScaler:
    """Per-feature affine map to [0, 1] from training-side statistics (robust range: the 0.5th and
    99.5th percentiles), clipped: BEL units expect non-negative inputs."""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray, percentile: float = 0.5) -> FeatureScaler:
        low, high = np.percentile(features, [percentile, 100.0 - percentile], axis=0)
        return cls(low, high)

    def transform(self, features: np.ndarray) -> np.ndarray:
        span = self.high - self.low
        scaled = np.divide(features - self.low, span, out=np.zeros_like(features, dtype=np.float64),
                           where=span > 1e-12)
        return np.clip(scaled, 0.0, 1.0)


# --- penultimate features of the Keras models -------------------------------------------------

def penultimate_model(model):
    """A Keras model from `model`'s input to the input of its last Dense or Conv2D layer (the
    classifier), global-average-pooled when that input is a map."""
    import keras

    heads = [layer for layer in model.layers if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))]
    if not heads:
        raise DataError(f"model {model.name} has no Dense or Conv2D classifier layer to take features before")
    features = heads[-1].input
    if len(features.shape) == 4:
        features = keras.layers.GlobalAveragePooling2D(name="penultimate_gap")(features)
    return keras.Model(model.inputs, features, name=f"{model.name}_penultimate")


def _load_keras(path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise DataError(f"feature model {path} does not exist (MoBEL takes features from the Keras "
                        "checkpoints in models/keras/; or run with --no-mobel)")
    import keras

    return keras.models.load_model(path, compile=False)


def face_features(model_path: str | Path, faces: np.ndarray, flip_tta: bool) -> np.ndarray:
    """(N, d) penultimate features of raw 48x48 uint8 faces, equalized as everywhere else; with
    `flip_tta` the mean of the face's and its mirror's features."""
    from device.vision.preprocessing import equalize_batch

    extractor = penultimate_model(_load_keras(model_path))
    x = equalize_batch(faces)[..., None].astype(np.float32)
    features = extractor.predict(x, batch_size=256, verbose=0)
    if flip_tta:
        features = 0.5 * (features + extractor.predict(x[:, :, ::-1], batch_size=256, verbose=0))
    return features.astype(np.float64)


def voice_features(model_path: str | Path, clips: list) -> np.ndarray:
    """(clips, d) penultimate features: each window's, VAD-weighted over the clip's 2 s windows."""
    from training.voice_task import window_set

    extractor = penultimate_model(_load_keras(model_path))
    windows = window_set(clips)
    return windows.clip_probabilities(extractor.predict(windows.features[..., None], batch_size=256,
                                                        verbose=0)).astype(np.float64)


# --- hyper-parameters, chosen on training-side pairs only ---------------------------------------

@dataclass(frozen=True)
class Config:
    experts: int
    rate: float  # alpha = beta for the experts, and the same for the gates
    weighting: str
    epochs: int = 0  # filled in by selection: the best epoch on the inner validation pairs

    def build(self, inputs: int, classes: int, seed: int) -> MoBEL:
        return MoBEL.new(inputs, classes, experts=self.experts, alpha=self.rate, beta=self.rate,
                         weighting=self.weighting, seed=seed)

    def label(self) -> str:
        return f"K={self.experts} alpha=beta={self.rate:g} {self.weighting}"


@dataclass
class Grid:
    experts: tuple[int, ...] = (2, 4, 8)
    rates: tuple[float, ...] = (3e-4, 1e-3, 3e-3)
    weighting: tuple[str, ...] = WEIGHTINGS
    epochs: int = 6
    configs: list[Config] = field(init=False)

    def __post_init__(self) -> None:
        combinations = itertools.product(self.experts, self.rates, self.weighting)
        self.configs = [Config(k, r, wt) for k, r, wt in combinations]


def select(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray, grid: Grid,
           classes: int, seed: int, log=None) -> tuple[Config, list[dict]]:
    """Train every configuration of `grid` on (train_x, train_y), score accuracy on (val_x, val_y)
    after every epoch; the best (configuration, epoch) wins, ties to the earlier, smaller one.
    Inputs are already scaled. Returns the winner (with its epoch count) and one row per config."""
    rows = []
    best: tuple[float, Config] | None = None
    for config in grid.configs:
        curve: list[float] = []

        def score(_: int, model: MoBEL) -> None:
            curve.append(float(np.mean(model.scores(val_x).argmax(1) == val_y)))  # noqa: B023

        model = config.build(train_x.shape[1], classes, seed)
        errors = model.fit(train_x, train_y, epochs=grid.epochs, seed=seed, after_epoch=score)
        epoch = int(np.argmax(curve)) + 1
        rows.append({"config": config.label(), "experts": config.experts, "alpha": config.rate,
                     "beta": config.rate, "weighting": config.weighting, "best_epoch": epoch,
                     "val_accuracy": curve[epoch - 1], "val_accuracy_per_epoch": curve,
                     "train_error_per_epoch": errors})
        if log is not None:
            log(f"MoBEL {config.label()}: inner validation accuracy {curve[epoch - 1]:.4f} at epoch {epoch}")
        if best is None or curve[epoch - 1] > best[0] + 1e-12:
            best = (curve[epoch - 1], Config(config.experts, config.rate, config.weighting, epoch))
    assert best is not None
    return best[1], rows
