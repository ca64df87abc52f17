"""MoBEL, the mixture of BEL experts: its equations, its learning rules and its row in the fusion report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.mobel import FeatureScaler, Grid, MoBEL, posterior, select


def linearly_readable(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features in [0, 1]: background noise, plus a strong response in one of the class's own five
    features. The class is a linear read-out of the input."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    x = rng.uniform(0.0, 0.3, (n, 5 * classes))
    x[np.arange(n), 5 * labels + rng.integers(0, 5, n)] += 0.6
    return np.clip(x, 0.0, 1.0), labels


@pytest.mark.parametrize("weighting", ["posterior", "none"])
def test_learns_a_separable_problem_well_above_chance(weighting: str):
    x, y = linearly_readable(600, classes=4, seed=0)
    model = MoBEL.new(inputs=x.shape[1], classes=4, experts=3, alpha=0.01, beta=0.01, weighting=weighting)
    errors = model.fit(x, y, epochs=8)
    assert errors[-1] < errors[0]
    held_x, held_y = linearly_readable(400, classes=4, seed=1)
    accuracy = np.mean(model.scores(held_x).argmax(1) == held_y)
    assert accuracy > 0.85  # chance is 0.25


def test_prior_and_posterior_are_distributions():
    x, y = linearly_readable(50, classes=3, seed=2)
    model = MoBEL.new(inputs=x.shape[1], classes=3, experts=4, seed=3)
    model.fit(x, y, epochs=2)
    response = model.respond(x)
    assert np.allclose(response.prior.sum(axis=1), 1) and (response.prior > 0).all()
    targets = np.eye(3)[y]
    h = posterior(response.prior, response.experts, targets)
    assert h.shape == (50, 4) and np.allclose(h.sum(axis=1), 1) and (h >= 0).all()
    # y is the prior-weighted mix of the experts, so it stays in (-1, 1)
    assert np.allclose(response.output, np.einsum("bk,bkc->bc", response.prior, response.experts))
    scores = model.scores(x)
    assert np.allclose(scores.sum(axis=1), 1) and np.array_equal(scores.argmax(1), response.output.argmax(1))


def test_posterior_follows_the_equation():
    prior = np.array([0.2, 0.8])
    experts = np.array([[0.9, -0.1], [0.1, 0.6]])
    target = np.array([1.0, 0.0])
    fit = np.exp(-0.5 * np.sum((target - experts) ** 2, axis=1))
    expected = prior * fit / np.sum(prior * fit)
    assert np.allclose(posterior(prior, experts, target), expected)
    assert expected[0] > prior[0]  # the expert that is closer to the target gains responsibility


def test_output_follows_the_equations():
    model = MoBEL.new(inputs=2, classes=2, experts=2, seed=0)
    model.vg[:] = [[0.5, 0.0, 0.2], [0.0, 0.0, 0.0]]
    model.wg[:] = [[0.0, 0.3], [0.1, 0.0]]
    p = np.array([0.4, 0.9])
    r = model.respond(p)
    th = p.max()
    e_a = np.einsum("n,kcn->kc", p, model.v[..., :2]) + th * model.v[..., 2]
    e_o = np.einsum("n,kcn->kc", p, model.w)
    experts = np.tanh(np.tanh(e_a) - np.tanh(e_o))
    gate = np.tanh(np.tanh(model.vg[:, :2] @ p + th * model.vg[:, 2]) - np.tanh(model.wg @ p))
    prior = (gate + 1) / 2 / np.sum((gate + 1) / 2)
    assert np.allclose(r.experts[0], experts) and np.allclose(r.gate[0], gate)
    assert np.allclose(r.prior[0], prior) and np.allclose(r.output[0], prior @ experts)


@pytest.mark.parametrize("weighting", ["none", "posterior"])
def test_one_step_moves_the_weights_in_the_documented_direction(weighting: str):
    """Hand-made: 2 experts, 2 classes, 2 inputs; every quantity of one step checked."""
    model = MoBEL(v=np.array([[[0.2, 0.1, 0.1], [0.3, 0.3, 0.1]], [[0.0, 0.4, 0.0], [0.1, 0.0, 0.2]]]),
                  w=np.array([[[0.1, 0.0], [-0.2, 0.1]], [[0.0, 0.2], [0.0, 0.0]]]),
                  vg=np.array([[0.3, 0.0, 0.1], [0.0, 0.0, 0.0]]), wg=np.zeros((2, 2)),
                  alpha=0.5, beta=0.25, gamma=0.1, alpha_g=0.4, beta_g=0.2, gamma_g=0.05, weighting=weighting)
    p, t = np.array([1.0, 0.5]), np.array([1.0, 0.0])
    before = model.respond(p)
    v0, w0, vg0, wg0 = model.v.copy(), model.w.copy(), model.vg.copy(), model.wg.copy()
    error = model.update(p, t)
    assert error == pytest.approx(np.sum((t - before.output[0]) ** 2))
    experts, e_a = before.experts[0], before.expert_amygdala[0]
    a_g, g = before.gate_amygdala[0], before.prior[0]
    h = posterior(g, experts, t)
    share = h if weighting == "posterior" else np.ones(2)
    drive = 0.5 * np.maximum(0.0, t - np.tanh(e_a))
    # amygdala: only the target class is driven (t - f(e_a) > 0), the others only decay
    assert (drive[:, 0] > 0).all() and (drive[:, 1] == 0).all()
    assert np.allclose(model.v[..., :2], v0[..., :2] + share[:, None, None] * (-0.1 * v0[..., :2]
                                                                               + drive[..., None] * p))
    assert np.allclose(model.v[..., 2], v0[..., 2] + share[:, None] * (-0.1 * v0[..., 2] + drive * p.max()))
    assert (model.v[:, 0, :2] > v0[:, 0, :2] * (1 - 0.1)).all()  # the target's amygdala rises beyond decay
    # orbitofrontal: dw = beta p (E - t): less inhibition where E < t (target), more where E > t = 0
    assert np.allclose(model.w, w0 + share[:, None, None] * 0.25 * (experts - t)[..., None] * p)
    assert (model.w[:, 0] < w0[:, 0]).all()
    overshoot = experts[:, 1] > 0
    assert overshoot.any() and (model.w[overshoot, 1] > w0[overshoot, 1]).all()
    # gates: target h_k; amygdala rises where f(a_k) < h_k, OFC inhibits where g_k > h_k
    gate_drive = 0.4 * np.maximum(0.0, h - np.tanh(a_g))
    assert np.allclose(model.vg[:, :2], vg0[:, :2] - 0.05 * vg0[:, :2] + gate_drive[:, None] * p)
    assert np.allclose(model.vg[:, 2], vg0[:, 2] - 0.05 * vg0[:, 2] + gate_drive * p.max())
    assert np.allclose(model.wg, wg0 + 0.2 * (g - h)[:, None] * p)
    gains = h > g  # the expert that fitted the target better gets less gate inhibition, the other more
    assert gains.any() and (~gains).any()
    assert (model.wg[gains] < 0).all() and (model.wg[~gains] > 0).all()


def test_gates_learn_to_route_to_the_expert_that_fits():
    """Two experts fixed by hand, each right on one half of the input space: the gate learns to
    give each expert its half (the posterior is the gate's target)."""
    n = 400
    rng = np.random.default_rng(0)
    side = rng.integers(0, 2, n)
    x = np.zeros((n, 2))
    x[np.arange(n), side] = rng.uniform(0.5, 1.0, n)
    labels = side.copy()
    model = MoBEL.new(inputs=2, classes=2, experts=2, alpha=0.0, beta=0.0, gamma=0.0,
                      alpha_g=0.2, beta_g=0.2, gamma_g=0.0, seed=0)
    # expert 0 always says class 0, expert 1 always says class 1 (amygdala thalamic weight only)
    model.v[:] = 0.0
    model.w[:] = 0.0
    model.v[0, 0, -1], model.v[1, 1, -1] = 5.0, 5.0
    model.fit(x, labels, epochs=5)
    prior = model.respond(x).prior
    assert prior[side == 0, 0].mean() > 0.6 and prior[side == 1, 1].mean() > 0.6
    assert np.mean(model.respond(x).output.argmax(1) == labels) > 0.95


def test_scaler_maps_training_range_to_unit_interval():
    train = np.array([[0.0, -5.0], [10.0, 5.0], [5.0, 0.0]])
    scaler = FeatureScaler.fit(train, percentile=0.0)
    assert np.allclose(scaler.transform(train), [[0, 0], [1, 1], [0.5, 0.5]])
    assert np.allclose(scaler.transform(np.array([[20.0, -9.0]])), [[1, 0]])  # clipped
    assert np.allclose(FeatureScaler.fit(np.ones((3, 1))).transform(np.ones((1, 1))), 0)  # constant: 0


def test_select_chooses_on_validation_and_records_the_epoch():
    x, y = linearly_readable(300, classes=3, seed=4)
    vx, vy = linearly_readable(200, classes=3, seed=5)
    grid = Grid(experts=(2, 3), rates=(1e-7, 1e-2), weighting=("posterior",), epochs=3)
    config, rows = select(x, y, vx, vy, grid, classes=3, seed=0)
    assert len(rows) == 4 and 1 <= config.epochs <= 3
    assert config.rate == 1e-2  # a rate that learns beats one that barely moves
    assert max(r["val_accuracy"] for r in rows) > 0.6  # chance is 1/3


def test_save_load_round_trip(tmp_path: Path):
    model = MoBEL.new(inputs=5, classes=3, experts=2, alpha=0.3, weighting="none", seed=1)
    model.save(tmp_path / "mobel.npz")
    loaded = MoBEL.load(tmp_path / "mobel.npz")
    x = np.random.default_rng(0).uniform(size=(4, 5))
    assert np.allclose(loaded.respond(x).output, model.respond(x).output)
    assert (loaded.alpha, loaded.weighting) == (0.3, "none")
    with pytest.raises(ValueError, match="takes 5 inputs"):
        loaded.respond(np.zeros(3))


def test_penultimate_features_are_the_classifier_input():
    import keras

    from tests.model_factory import tiny_face_keras
    from training.architectures import voice_cnn
    from training.mobel import penultimate_model

    face = tiny_face_keras()
    extractor = penultimate_model(face)
    assert extractor.output.shape[-1] == 4  # the GAP before the dense softmax
    x = np.random.default_rng(0).uniform(0, 255, (2, 48, 48, 1)).astype(np.float32)
    dense = face.layers[-1]
    kernel, bias = dense.get_weights()
    logits = extractor.predict(x, verbose=0) @ kernel + bias
    assert np.allclose(keras.ops.softmax(logits).numpy(), face.predict(x, verbose=0), atol=1e-5)
    voice = voice_cnn(num_classes=8, width=1.0)
    assert penultimate_model(voice).output.shape[-1] == voice.get_layer("logits").input.shape[-1]


@pytest.mark.slow
def test_reduced_fusion_evaluation_reports_mobel(tmp_path: Path, face_model: Path,
                                                 capsys: pytest.CaptureFixture):
    import keras

    from tests.model_factory import tiny_face_keras
    from tests.synthetic_faces import write_fer_csv
    from tests.voice_fixtures import build_voice_model, write_ravdess_folder
    from training.architectures import voice_cnn
    from training.fusion_evaluation import MOBEL_CROSS_FITTED, main

    fer = write_fer_csv(tmp_path / "fer.csv", train_per_class=6, test_per_class=4)
    ravdess = write_ravdess_folder(tmp_path / "ravdess", actors=(1, 2, 17, 18))
    voice_model = build_voice_model(tmp_path / "models")
    keras.utils.set_random_seed(0)
    tiny_face_keras().save(tmp_path / "face.keras")
    voice_cnn(num_classes=8, width=0.5).save(tmp_path / "voice.keras")
    code = main(["--face-model", str(face_model), "--voice-model", str(voice_model), "--fer", str(fer),
                 "--ravdess", str(ravdess), "--train-actors", "1-2", "--test-actors", "17-18",
                 "--pairings", "2", "--bel-epochs", "2", "--out", str(tmp_path / "out"),
                 "--bel-out", str(tmp_path / "out" / "bel.json"),
                 "--face-features-model", str(tmp_path / "face.keras"),
                 "--voice-features-model", str(tmp_path / "voice.keras"),
                 "--mobel-experts", "2,3", "--mobel-rates", "0.01", "--mobel-weighting", "posterior",
                 "--mobel-epochs", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "MoBEL: accuracy" in printed and '"mobel":' in printed
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    rows = {"face only", "voice only", "product rule", "BEL", "MoBEL", MOBEL_CROSS_FITTED}
    assert rows <= set(report["results"])
    mobel = report["results"]["MoBEL"]
    assert mobel["n"] == 28 and 0.0 <= mobel["accuracy"] <= 1.0
    chosen = report["mobel"]["chosen"]
    assert chosen["experts"] in (2, 3) and 1 <= chosen["epochs"] <= 2
    assert len(report["mobel"]["selection"]) == 2
    voice_dims = voice_cnn(8, width=0.5).get_layer("logits").input.shape[-1]
    assert report["mobel"]["features"] == {"face": 4, "voice": voice_dims}
    assert report["mobel"]["inner_split"]["actors_held"] == [2]  # training side only
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| MoBEL |" in markdown and "training-side pairs only" in markdown
    assert MoBEL.load(tmp_path / "out" / "mobel.npz").experts == chosen["experts"]
