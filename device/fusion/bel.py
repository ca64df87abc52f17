"""Brain emotional learning (BEL) decision fusion, in numpy, with its own learning rules.

One BEL unit per output class, over the concatenated class probabilities p of the modalities
(here: 7 face + 7 voice-mapped-to-face). Following the source's equations:

    amygdala        e_a = sum_j v_j p_j + v_{n+1} p_th,   p_th = max_j p_j  (thalamic input)
    orbitofrontal   e_o = sum_j w_j p_j
    output          E = f(f(e_a) - f(e_o)),   f = tansig = tanh
    learning        dv_j = -gamma v_j + alpha p_j max(0, t - f(e_a))   (amygdala only rises)
                    dw_j = beta p_j (E - t)                              (OFC inhibits overshoot)

The amygdala learns which inputs announce a class; the orbitofrontal cortex learns to damp the
classes that fire where they should not. Decisions take the largest output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.runtime.tflite_model import ModelLoadError


def tansig(x: np.ndarray) -> np.ndarray:
    """2 / (1 + exp(-2x)) - 1, which is tanh(x)."""
    return np.tanh(x)


@dataclass
class BelResponse:
    amygdala: np.ndarray  # e_a, (batch, classes)
    orbitofrontal: np.ndarray  # e_o
    output: np.ndarray  # E in (-1, 1)


class BEL:
    """v: (classes, inputs + 1) amygdala weights (last column: thalamic); w: (classes, inputs) OFC."""

    def __init__(self, v: np.ndarray, w: np.ndarray, alpha: float, beta: float, gamma: float) -> None:
        if v.shape != (w.shape[0], w.shape[1] + 1):
            raise ValueError(f"BEL weights do not fit together: v {v.shape}, w {w.shape}")
        self.v, self.w = v.astype(np.float64), w.astype(np.float64)
        self.alpha, self.beta, self.gamma = alpha, beta, gamma

    @classmethod
    def new(cls, inputs: int, classes: int, alpha: float = 0.05, beta: float = 0.02,
            gamma: float = 1e-4) -> BEL:
        return cls(np.zeros((classes, inputs + 1)), np.zeros((classes, inputs)), alpha, beta, gamma)

    @property
    def inputs(self) -> int:
        return self.w.shape[1]

    def respond(self, p: np.ndarray) -> BelResponse:
        p = np.atleast_2d(np.asarray(p, dtype=np.float64))
        if p.shape[1] != self.inputs:
            raise ValueError(f"BEL takes {self.inputs} inputs, got {p.shape[1]}")
        e_a = p @ self.v[:, :-1].T + p.max(axis=1, keepdims=True) * self.v[:, -1]
        e_o = p @ self.w.T
        return BelResponse(e_a, e_o, tansig(tansig(e_a) - tansig(e_o)))

    def update(self, p: np.ndarray, target: np.ndarray) -> float:
        """One learning step on one sample; returns its error sum_i (t_i - E_i)^2 before the step."""
        p = np.asarray(p, dtype=np.float64)
        target = np.asarray(target, dtype=np.float64)
        response = self.respond(p)
        e_a, big_e = response.amygdala[0], response.output[0]
        drive = self.alpha * np.maximum(0.0, target - tansig(e_a))
        self.v[:, :-1] += -self.gamma * self.v[:, :-1] + drive[:, None] * p[None, :]
        self.v[:, -1] += -self.gamma * self.v[:, -1] + drive * p.max()
        self.w += self.beta * (big_e - target)[:, None] * p[None, :]
        return float(np.sum((target - big_e) ** 2))

    def fit(self, p: np.ndarray, labels: np.ndarray, epochs: int = 20, seed: int = 0) -> list[float]:
        """Online learning over shuffled samples; returns the mean error of each epoch."""
        targets = np.eye(self.v.shape[0])[np.asarray(labels)]
        rng = np.random.default_rng(seed)
        errors = []
        for _ in range(epochs):
            order = rng.permutation(len(p))
            errors.append(float(np.mean([self.update(p[i], targets[i]) for i in order])))
        return errors

    def error(self, p: np.ndarray, labels: np.ndarray) -> float:
        """Mean of sum_i (t_i - E_i)^2 over samples, without learning."""
        targets = np.eye(self.v.shape[0])[np.asarray(labels)]
        return float(np.mean(np.sum((targets - self.respond(p).output) ** 2, axis=1)))

    def scores(self, p: np.ndarray) -> np.ndarray:
        """Outputs mapped from (-1, 1) to a distribution: (E + 1) / 2, normalised. Same argmax as E;
        a ranking for events, not a calibrated probability."""
        positive = (self.respond(p).output + 1.0) / 2.0
        return positive / np.maximum(positive.sum(axis=1, keepdims=True), 1e-12)

    def save(self, path: str | Path) -> None:
        """JSON: a few hundred weights, readable and diffable, and nothing that looks like data."""
        weights = {"v": self.v.tolist(), "w": self.w.tolist(), "alpha": self.alpha, "beta": self.beta,
                   "gamma": self.gamma}
        Path(path).write_text(json.dumps(weights) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> BEL:
        path = Path(path)
        if not path.is_file():
            raise ModelLoadError(f"BEL fusion model {path} does not exist; build it with "
                                 "`python -m training.fusion_evaluation` or use fusion.method = \"product\"")
        try:
            data = json.loads(path.read_text())
            return cls(np.asarray(data["v"], dtype=np.float64), np.asarray(data["w"], dtype=np.float64),
                       float(data["alpha"]), float(data["beta"]), float(data["gamma"]))
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"BEL fusion model {path} cannot be read ({exc}); rebuild it with "
                                 "`python -m training.fusion_evaluation`") from None
