"""The pseudo-pair fusion evaluation end to end on synthetic faces and synthetic RAVDESS-named audio."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from device.config import FusionSection
from device.fusion.product_rule import Fusion
from device.runtime.labels import FACE_LABELS
from device.vision.face_classifier import FaceClassifier
from tests.synthetic_faces import write_fer_csv
from tests.voice_fixtures import build_voice_model, write_ravdess_folder
from training.fer_data import load_faces
from training.fusion_evaluation import CROSS_FITTED, MOBEL_CROSS_FITTED, main, pair_by_class


def test_pairs_are_class_matched_and_use_every_face():
    faces = np.array([0, 3, 3, 6, 6, 6])
    clips = np.array([6, 3, 0, 6, 3, 3])  # clip classes over the face labels
    for seed in range(5):
        pairs = pair_by_class(faces, clips, seed)
        assert len(pairs) == len(faces)
        assert np.array_equal(clips[pairs], faces)


def test_a_class_without_clips_is_a_clear_error():
    from training.data_errors import DataError

    with pytest.raises(DataError, match="no voice clip of class disgust"):
        pair_by_class(np.array([1]), np.array([0, 3]), 0)


@pytest.mark.slow
def test_fusion_evaluation_end_to_end(tmp_path: Path, face_model: Path, capsys: pytest.CaptureFixture):
    fer = write_fer_csv(tmp_path / "fer.csv", train_per_class=6, test_per_class=4)
    ravdess = write_ravdess_folder(tmp_path / "ravdess", actors=(1, 2, 17, 18))
    voice_model = build_voice_model(tmp_path / "models")
    bel_path = tmp_path / "out" / "fusion_bel.json"
    code = main(["--face-model", str(face_model), "--voice-model", str(voice_model), "--fer", str(fer),
                 "--ravdess", str(ravdess), "--train-actors", "1-2", "--test-actors", "17-18",
                 "--pairings", "3", "--bel-epochs", "3", "--out", str(tmp_path / "out"),
                 "--bel-out", str(bel_path)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "PSEUDO-PAIRS, not paired recordings" in printed
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert set(report["results"]) == {"face only", "voice only", "product rule", "BEL", CROSS_FITTED, "MoBEL",
                                      MOBEL_CROSS_FITTED}  # MoBEL on by default, from models/keras/
    assert report["held_out"]["pairs"] == 28 and report["held_out"]["clips"] == 16
    assert report["training"]["pairs"] == 42
    # every PublicTest face is used once, so face-only is exactly the face model's own accuracy,
    # scored as the daemon scores faces by default (flip TTA)
    assert report["face_flip_tta"] is True
    faces = load_faces(fer, "PublicTest")
    classifier = FaceClassifier(face_model, flip_tta=True)
    predicted = np.array([classifier.classify(face).argmax() for face in faces.faces])
    own = np.mean(predicted == faces.labels)
    assert report["results"]["face only"]["accuracy"] == pytest.approx(own)
    assert report["results"]["face only"]["accuracy_sd"] == 0.0
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "PSEUDO-PAIRS" in markdown and "| BEL |" in markdown
    for name in ("voice_clips_confusion.png", "confusion_product_rule.png", "confusion_BEL.png"):
        assert (tmp_path / "out" / name).stat().st_size > 1000
    fusion = Fusion(FusionSection(method="bel", bel_model=str(bel_path)))  # what the daemon loads
    fused = fusion.fuse(np.full(7, 1 / 7), np.eye(7)[FACE_LABELS.index("sad")])
    assert fused.method == "bel" and fused.probabilities.shape == (7,)


def test_missing_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture):
    fer = write_fer_csv(tmp_path / "fer.csv", train_per_class=2, test_per_class=1)
    code = main(["--face-model", str(tmp_path / "face.tflite"), "--fer", str(fer),
                 "--ravdess", str(tmp_path), "--out", str(tmp_path / "out")])
    assert code == 2
    assert "face.tflite does not exist" in capsys.readouterr().err
