"""Each shipped int8 model still produces what it produced when it was converted.

`make quantize` records the outputs (`python -m converters.golden_outputs`); this test re-runs the
models on the same fixed inputs and allows one quantization step (x86 vs ARM builds of the runtime).
A runtime upgrade that shifts results, or a model file replaced without re-recording, fails here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from converters.golden_outputs import GOLDEN, model_outputs, shipped_int8_models
from device.runtime.model_card_check import read_card
from tests.conftest import ROOT

MODELS = shipped_int8_models(ROOT / "models")


def golden() -> dict:
    return json.loads((ROOT / GOLDEN).read_text())


def test_every_shipped_int8_model_has_golden_outputs() -> None:
    if not MODELS:
        pytest.skip("no shipped models in this checkout")
    assert sorted(golden()) == sorted(path.name for path in MODELS)


@pytest.mark.parametrize("model", MODELS, ids=[path.stem for path in MODELS])
def test_outputs_match_the_recorded_ones_within_one_step(model: Path) -> None:
    recorded = golden()[model.name]
    assert recorded["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest(), (
        f"{model.name} changed since its golden outputs were recorded: re-record with `make quantize`")
    now = model_outputs(model)
    assert set(now) == set(recorded["outputs"])
    for name, values in now.items():
        steps = [abs(a - b) for a, b in zip(values, recorded["outputs"][name], strict=True)]
        assert max(steps) <= 1, f"{model.name} on {name}: {values} vs recorded {recorded['outputs'][name]}"


def test_the_golden_inputs_tell_models_apart() -> None:
    # a model swapped for another would fail on its outputs alone, not only on its hash
    faces = [model for model in MODELS if read_card(model.with_suffix(".json"))["kind"] == "face"]
    if len(faces) < 2:
        pytest.skip("needs two shipped face models")
    first, second = (golden()[model.name]["outputs"] for model in faces[:2])
    assert any(max(abs(a - b) for a, b in zip(first[name], second[name], strict=True)) > 1 for name in first)
    assert len({tuple(values) for values in first.values()}) == len(first)  # each input tests something
