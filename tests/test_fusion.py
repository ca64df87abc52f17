"""Face + voice fusion: the product rule, missing and stale modalities, BEL as an option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.config import FusionSection
from device.fusion.bel import BEL
from device.fusion.product_rule import Fusion, product_rule
from device.runtime.labels import FACE_LABELS
from device.runtime.tflite_model import ModelLoadError
from device.runtime.voice_labels import VOICE_LABELS, VOICE_TO_FACE, voice_to_face_probabilities

FACE = np.array([0.1, 0.05, 0.05, 0.5, 0.1, 0.1, 0.1])  # happy
VOICE = np.array([0.05, 0.05, 0.05, 0.1, 0.6, 0.05, 0.1])  # sad


def test_voice_classes_map_onto_face_classes_with_calm_as_neutral():
    assert VOICE_TO_FACE["calm"] == "neutral" and set(VOICE_TO_FACE.values()) == set(FACE_LABELS)
    voice = np.eye(len(VOICE_LABELS))[VOICE_LABELS.index("calm")] * 0.6 + 0.05
    mapped = voice_to_face_probabilities(voice)
    assert mapped.shape == (7,) and mapped.sum() == pytest.approx(1.0)
    assert FACE_LABELS[int(mapped.argmax())] == "neutral"
    assert mapped[FACE_LABELS.index("neutral")] == pytest.approx(0.6 + 0.05 + 0.05)


def test_product_rule_is_normalised_product():
    fused = product_rule(FACE, VOICE)
    expected = FACE * VOICE / np.sum(FACE * VOICE)
    assert np.allclose(fused, expected, atol=1e-6)


def test_product_rule_with_one_modality_missing_is_the_other_alone():
    assert np.allclose(product_rule(FACE, None), FACE / FACE.sum())
    assert np.allclose(product_rule(None, VOICE), VOICE / VOICE.sum())
    assert product_rule(None, None) is None


def test_weights_shift_the_decision():
    assert FACE_LABELS[int(product_rule(FACE, VOICE, 1.0, 0.2).argmax())] == "happy"
    assert FACE_LABELS[int(product_rule(FACE, VOICE, 0.2, 1.0).argmax())] == "sad"
    assert np.allclose(product_rule(FACE, VOICE, 1.0, 0.0), FACE / FACE.sum(), atol=1e-6)


def test_one_zero_probability_does_not_veto_outright():
    face = np.array([0.0, 0, 0, 1.0, 0, 0, 0])
    fused = product_rule(face, VOICE)
    assert np.all(np.isfinite(fused)) and fused.sum() == pytest.approx(1.0)


def test_fusion_applies_the_sections_weights():
    both = Fusion(FusionSection(method="product")).fuse(FACE, VOICE)
    assert both.method == "product" and np.allclose(both.probabilities, product_rule(FACE, VOICE))
    voice_heavy = Fusion(FusionSection(voice_weight=4.0)).fuse(FACE, VOICE)
    assert FACE_LABELS[int(voice_heavy.probabilities.argmax())] == "sad"


def test_bel_fusion_loads_a_trained_model(tmp_path: Path):
    with pytest.raises(ModelLoadError, match="fusion_evaluation"):
        Fusion(FusionSection(method="bel", bel_model=str(tmp_path / "missing.json")))
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 200)
    onehot = np.eye(7)[labels]
    p = np.hstack([0.5 * onehot + 0.5 * rng.dirichlet(np.ones(7), 200), 0.5 * onehot + 0.5 / 7])
    bel = BEL.new(inputs=14, classes=7)
    bel.fit(p, labels, epochs=5)
    bel.save(tmp_path / "bel.json")
    fusion = Fusion(FusionSection(method="bel", bel_model=str(tmp_path / "bel.json")))
    fused = fusion.fuse(p[0, :7], p[0, 7:])
    assert fused.method == "bel" and fused.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert int(fused.probabilities.argmax()) == labels[0]
    BEL.new(inputs=15, classes=7).save(tmp_path / "wide.json")
    with pytest.raises(ModelLoadError, match="takes 15 inputs"):
        Fusion(FusionSection(method="bel", bel_model=str(tmp_path / "wide.json")))
