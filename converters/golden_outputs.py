"""Golden outputs: what each shipped int8 model produces on a few fixed inputs, kept in the repository.

    python -m converters.golden_outputs            # re-record (make quantize does, after converting)

A runtime upgrade (ai-edge-litert, XNNPACK), a preprocessing change or a model swapped without
its card then fails `tests/test_golden_outputs.py` instead of silently publishing other numbers.
The inputs are built here from public-domain pictures (scikit-image's astronaut portrait) and
synthetic sound, nothing from a dataset. Outputs are stored as the int8 values the model emits;
the test allows one quantization step, the difference seen between x86 and ARM builds of the
runtime (../shared/PLATFORM-NOTES.md).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import cv2
import numpy as np

from device.audio.log_mel import SAMPLE_RATE, WINDOW_SAMPLES
from device.audio.voice_classifier import VoiceClassifier
from device.runtime.model_card_check import read_card
from device.runtime.tflite_model import TFLiteModel
from device.vision.face_classifier import FaceClassifier
from device.vision.face_gate import FaceGate

MODELS = Path("models")
GOLDEN = Path("tests") / "golden" / "model_outputs.json"
ASTRONAUT_FACE = (150, 40, 160, 180)  # x, y, w, h of the face in the 512x512 portrait


def face_inputs() -> dict[str, np.ndarray]:
    """Raw grey crops, preprocessed by the classifier exactly as the daemon does."""
    from skimage import data

    grey = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    x, y, w, h = ASTRONAUT_FACE
    face = grey[y:y + h, x:x + w]
    ramp = np.add.outer(np.arange(64), np.arange(64)).astype(np.uint8) * 2
    return {"astronaut_face": face, "astronaut_face_mirrored": face[:, ::-1].copy(),
            "diagonal_ramp": ramp}


def voice_inputs() -> dict[str, np.ndarray]:
    """One window each: a harmonic voice switched on and off like syllables, a steady tone, a hiss."""
    t = np.arange(WINDOW_SAMPLES) / SAMPLE_RATE
    voice = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 8)) / 2
    syllables = 0.3 * voice * np.clip(np.sin(2 * np.pi * 4 * t), 0, 1)
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    hiss = 0.05 * np.random.default_rng(0).standard_normal(WINDOW_SAMPLES)
    return {name: signal.astype(np.float32) for name, signal in
            (("syllables", syllables), ("tone_440hz", tone), ("hiss", hiss))}


def raw_outputs(probabilities: np.ndarray, model: TFLiteModel) -> list[int]:
    """The int8 values behind dequantized outputs (exact: dequantizing is affine)."""
    spec = model.output
    return [int(v) for v in np.rint(probabilities / spec.scale + spec.zero_point)]


def model_outputs(path: Path) -> dict[str, list[int]]:
    kind = read_card(path.with_suffix(".json"))["kind"]
    if kind == "face":
        face = FaceClassifier(path, flip_tta=False)
        return {name: raw_outputs(face.classify(crop), face.model) for name, crop in face_inputs().items()}
    if kind == "face_gate":
        gate = FaceGate(path, threshold=0.5)
        return {name: raw_outputs(gate.probabilities(crop), gate.model)
                for name, crop in face_inputs().items()}
    voice = VoiceClassifier(path)
    return {name: raw_outputs(voice.classify_window(window), voice.model)
            for name, window in voice_inputs().items()}


def shipped_int8_models(models: Path = MODELS) -> list[Path]:
    return sorted(models.glob("*_int8.tflite"))


def record(models: Path = MODELS, golden: Path = GOLDEN) -> dict:
    table = {path.name: {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                         "outputs": model_outputs(path)} for path in shipped_int8_models(models)}
    golden.parent.mkdir(parents=True, exist_ok=True)
    one_line_lists = re.sub(r"\[\s+([-\d,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]",
                            json.dumps(table, indent=1))
    golden.write_text(one_line_lists + "\n")
    return table


def main() -> int:
    table = record()
    print(f"recorded golden outputs of {', '.join(table)} in {GOLDEN}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
