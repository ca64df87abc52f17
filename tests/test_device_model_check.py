"""The daemon refuses models that do not fit: wrong input shape, card mismatch, corrupt file."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from device.runtime.labels import FACE_LABELS
from device.runtime.model_card_check import ModelCardError, ModelIdentity, check_model_card
from device.runtime.tflite_model import ModelLoadError, TFLiteModel
from device.vision.face_classifier import FaceClassifier
from tests.conftest import run_daemon
from tests.test_device_config import assert_one_line_exit_2

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def odd_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tests.model_factory import build_face_model

    folder = tmp_path_factory.mktemp("odd_models")
    return {"64px": build_face_model(folder, "face_64px", input_shape=(64, 64, 1)),
            "rgb": build_face_model(folder, "face_rgb", input_shape=(48, 48, 3)),
            "5 classes": build_face_model(folder, "face_5", classes=5)}


def check_face(model: TFLiteModel, card: Path) -> ModelIdentity:
    return check_model_card(model, card, "face", FACE_LABELS)


def card_claiming(model: Path, donor_card: Path, card: Path) -> Path:
    """The donor's card, edited by hand to claim `model`'s bytes: only the other checks can tell."""
    data = json.loads(donor_card.read_text())
    data.update(file_bytes=model.stat().st_size, sha256=hashlib.sha256(model.read_bytes()).hexdigest())
    card.write_text(json.dumps(data))
    return card


def test_matching_card_passes_and_names_the_model(face_model: Path) -> None:
    identity = check_face(TFLiteModel(face_model), face_model.with_suffix(".json"))
    assert identity.name == face_model.stem and len(identity.version) == 12


def test_model_with_a_different_input_shape_than_its_card_is_refused(tmp_path: Path, face_model: Path,
                                                                     odd_models) -> None:
    # a 64x64 model that arrived with the 48x48 model's card
    model = shutil.copy(odd_models["64px"], tmp_path / "face.tflite")
    card = card_claiming(Path(model), face_model.with_suffix(".json"), tmp_path / "face.json")
    with pytest.raises(ModelCardError, match=r"input shape \(1, 64, 64, 1\) but card says \(1, 48, 48, 1\)"):
        check_face(TFLiteModel(model), Path(card))
    result = run_daemon("--model", str(model), "--no-mqtt", "--source", "unused.mp4")
    assert_one_line_exit_2(result, "input shape (1, 64, 64, 1) but card says (1, 48, 48, 1)", "make quantize")


def test_colour_model_is_refused_even_with_its_own_card(odd_models) -> None:
    with pytest.raises(ModelLoadError, match=r"input shape \(1, 48, 48, 3\); a face model takes"):
        FaceClassifier(odd_models["rgb"])
    result = run_daemon("--model", str(odd_models["rgb"]), "--no-mqtt")
    assert_one_line_exit_2(result, "(1, 48, 48, 3)")


def test_label_count_mismatch_is_refused(tmp_path: Path, face_model: Path, odd_models) -> None:
    model = shutil.copy(odd_models["5 classes"], tmp_path / "face.tflite")
    card_claiming(Path(model), face_model.with_suffix(".json"), tmp_path / "face.json")
    with pytest.raises(ModelCardError, match="5 outputs but card lists 7 labels"):
        check_face(TFLiteModel(model), tmp_path / "face.json")


def test_a_model_that_is_not_the_one_its_card_describes_is_refused(tmp_path: Path, face_model: Path,
                                                                  odd_models) -> None:
    # another model of the same shape and labels under this card (the DS-CNN under the
    # mini-Xception's card ran and published other numbers before the card held the file's hash)
    other = Path(shutil.copy(odd_models["64px"], tmp_path / "other.tflite"))
    shutil.copy(face_model.with_suffix(".json"), tmp_path / "other.json")
    with pytest.raises(ModelCardError, match=r"not the model this card describes"):
        check_face(TFLiteModel(other), tmp_path / "other.json")
    # the right model with 4,000 bytes overwritten in the middle still loads, and still is refused
    damaged = bytearray(face_model.read_bytes())
    middle = len(damaged) // 2
    damaged[middle:middle + 4000] = bytes(4000)
    (tmp_path / "damaged.tflite").write_bytes(bytes(damaged))
    shutil.copy(face_model.with_suffix(".json"), tmp_path / "damaged.json")
    result = run_daemon("--model", str(tmp_path / "damaged.tflite"), "--no-mqtt", "--source", "unused.mp4")
    assert_one_line_exit_2(result, "is not the model this card describes", "make quantize")


def test_missing_card_is_refused(tmp_path: Path, face_model: Path) -> None:
    model = shutil.copy(face_model, tmp_path / "lonely.tflite")
    with pytest.raises(ModelCardError, match=r"lonely\.json does not exist"):
        check_face(TFLiteModel(model), tmp_path / "lonely.json")


def test_corrupt_model_file_is_refused(tmp_path: Path, face_model: Path) -> None:
    corrupt = tmp_path / "face.tflite"
    corrupt.write_bytes(face_model.read_bytes()[:300])
    shutil.copy(face_model.with_suffix(".json"), tmp_path / "face.json")
    with pytest.raises(ModelLoadError, match="is not a valid TFLite model"):
        TFLiteModel(corrupt)
    result = run_daemon("--model", str(corrupt), "--no-mqtt")
    assert_one_line_exit_2(result, f"model file {corrupt} is not a valid TFLite model")


def test_voice_model_is_checked_against_its_card_at_start_up(tmp_path: Path, face_model: Path,
                                                             demo_video: Path) -> None:
    from tests.conftest import ROOT

    shipped = ROOT / "models" / "voice_cnn_int8.tflite"
    if not shipped.is_file():
        pytest.skip("the shipped voice model is not in this checkout")
    voice = Path(shutil.copy(shipped, tmp_path / "voice.tflite"))
    # the face card beside the voice model, edited to claim its bytes: wrong kind, shape and labels
    card_claiming(voice, face_model.with_suffix(".json"), tmp_path / "voice.json")
    audio = tmp_path / "talk.wav"
    audio.write_bytes(b"RIFF")  # never opened: the card check comes first
    result = run_daemon("--model", str(face_model), "--source", str(demo_video), "--no-mqtt",
                        "--audio-file", str(audio), "--set", f"audio.model={voice}")
    assert_one_line_exit_2(result, "card kind is 'face', not 'voice'")
