"""BEL decision fusion: the source's learning rules, on problems small enough to reason about."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.fusion.bel import BEL, tansig
from device.runtime.tflite_model import ModelLoadError


def two_noisy_experts(n: int, classes: int, accuracy: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated probabilities of two independent classifiers, each right `accuracy` of the time
    and more confident when right, which is what makes fusing them worthwhile."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    halves = []
    for _ in range(2):
        right = rng.random(n) < accuracy
        guess = np.where(right, labels, (labels + rng.integers(1, classes, n)) % classes)
        probs = rng.dirichlet(np.ones(classes), n) * 0.4
        probs[np.arange(n), guess] += np.where(right, 0.6, 0.3)
        halves.append(probs / probs.sum(axis=1, keepdims=True))
    return np.hstack(halves), labels


def test_tansig_is_the_sources_formula():
    x = np.linspace(-3, 3, 13)
    assert np.allclose(tansig(x), 2 / (1 + np.exp(-2 * x)) - 1)


def test_output_follows_the_equations():
    bel = BEL(v=np.array([[0.5, 0.0, 1.0], [0.0, 2.0, 0.0]]), w=np.array([[0.0, 1.0], [0.3, 0.0]]),
              alpha=0.1, beta=0.1, gamma=0.0)
    p = np.array([0.2, 0.8])
    response = bel.respond(p)
    e_a = np.array([0.5 * 0.2 + 1.0 * 0.8, 2.0 * 0.8])  # thalamic input max(p) = 0.8
    e_o = np.array([0.8, 0.3 * 0.2])
    assert np.allclose(response.amygdala[0], e_a) and np.allclose(response.orbitofrontal[0], e_o)
    assert np.allclose(response.output[0], np.tanh(np.tanh(e_a) - np.tanh(e_o)))


def test_one_update_step_applies_the_amygdala_and_ofc_rules():
    bel = BEL.new(inputs=2, classes=2, alpha=0.5, beta=0.25, gamma=0.1)
    bel.v[:] = [[0.2, 0.2, 0.2], [0.4, 0.4, 0.4]]
    p, target = np.array([1.0, 0.5]), np.array([1.0, 0.0])
    before = bel.respond(p)
    v0, w0 = bel.v.copy(), bel.w.copy()
    error = bel.update(p, target)
    assert error == pytest.approx(np.sum((target - before.output[0]) ** 2))
    drive = 0.5 * np.maximum(0, target - np.tanh(before.amygdala[0]))
    assert drive[1] == 0  # class 1: target 0, amygdala already positive, so it only decays
    assert np.allclose(bel.v[:, :2], v0[:, :2] - 0.1 * v0[:, :2] + drive[:, None] * p)
    assert np.allclose(bel.v[:, 2], v0[:, 2] - 0.1 * v0[:, 2] + drive * p.max())
    assert np.allclose(bel.w, w0 + 0.25 * (before.output[0] - target)[:, None] * p)


def test_learning_reduces_the_error_and_beats_either_expert():
    p, labels = two_noisy_experts(400, classes=3, accuracy=0.6, seed=0)
    bel = BEL.new(inputs=6, classes=3)
    start = bel.error(p, labels)
    errors = bel.fit(p, labels, epochs=15)
    assert errors[-1] < errors[0] and bel.error(p, labels) < 0.5 * start
    held_p, held_labels = two_noisy_experts(400, classes=3, accuracy=0.6, seed=1)
    accuracy = np.mean(bel.scores(held_p).argmax(axis=1) == held_labels)
    singles = [np.mean(held_p[:, half].argmax(1) == held_labels) for half in (slice(0, 3), slice(3, 6))]
    assert accuracy > max(singles)


def test_decay_forgets_without_input():
    bel = BEL.new(inputs=2, classes=1, gamma=0.1)
    bel.v[:] = 1.0
    bel.update(np.zeros(2), np.array([0.0]))
    assert np.allclose(bel.v, 0.9)


def test_scores_are_a_distribution_with_the_same_winner():
    p, labels = two_noisy_experts(50, classes=3, accuracy=0.7, seed=2)
    bel = BEL.new(inputs=6, classes=3)
    bel.fit(p, labels, epochs=3)
    scores = bel.scores(p)
    assert np.allclose(scores.sum(axis=1), 1) and (scores >= 0).all()
    assert np.array_equal(scores.argmax(1), bel.respond(p).output.argmax(1))


def test_save_load_round_trip_and_bad_files(tmp_path: Path):
    bel = BEL.new(inputs=4, classes=2, alpha=0.3, beta=0.2, gamma=0.01)
    bel.v[:] = np.arange(10).reshape(2, 5)
    bel.save(tmp_path / "bel.json")
    loaded = BEL.load(tmp_path / "bel.json")
    assert np.array_equal(loaded.v, bel.v) and (loaded.alpha, loaded.beta, loaded.gamma) == (0.3, 0.2, 0.01)
    with pytest.raises(ModelLoadError, match="does not exist"):
        BEL.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match="cannot be read"):
        BEL.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="takes 4 inputs"):
        loaded.respond(np.zeros(3))
