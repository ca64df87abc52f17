"""The face gate: its data (split by picture, e2e backgrounds held out, faces masked), the device
shell and its hook in the tracker, the [gate] config section, and train -> convert -> card on
synthetic data (no ../shared needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from device.config import ConfigError, load_config
from device.config_loading import field_hints
from device.errors import ModelCardError
from device.vision.box_geometry import Box
from device.vision.face_gate import GATE_LABELS, FaceGate
from tests.conftest import run_app, run_daemon
from tests.test_device_config import assert_one_line_exit_2


def build_gate_model(out_dir: Path, name: str = "tiny_gate_int8", kind: str = "face_gate") -> Path:
    """An untrained 2-output int8 model in the shipped format, with a card of `kind`."""
    from converters.model_card import build_card, write_card
    from converters.quantize import convert
    from tests.model_factory import tiny_face_keras

    model = tiny_face_keras(classes=2)
    calibration = np.random.default_rng(0).integers(0, 256, size=(32, 48, 48, 1)).astype(np.float32)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.tflite"
    path.write_bytes(convert(model, calibration))
    write_card(build_card(path, architecture=model.name, parameters=int(model.count_params()),
                          labels=GATE_LABELS, preprocessing="test model", training={}, metrics={}, kind=kind),
               path)
    return path


@pytest.fixture(scope="module")
def gate_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_gate_model(tmp_path_factory.mktemp("gate"))


# --- data ---------------------------------------------------------------------------------------

def test_pictures_are_split_by_source_and_e2e_backgrounds_are_held_out() -> None:
    from benchmarks.e2e.clip_generator import NATURAL
    from training.face_gate_data import E2E_HELD_OUT, TRAIN_PICTURES, VAL_PICTURES, mine_negatives

    assert set(NATURAL) <= set(E2E_HELD_OUT)
    assert not set(TRAIN_PICTURES) & set(VAL_PICTURES)
    assert not (set(TRAIN_PICTURES) | set(VAL_PICTURES)) & set(E2E_HELD_OUT)
    with pytest.raises(Exception, match="make e2e's backgrounds"):
        mine_negatives("train", pictures=("brick",))


def test_mined_patches_are_daemon_crops_and_skip_masked_faces(monkeypatch: pytest.MonkeyPatch) -> None:
    from training import face_gate_data as data

    spec = data.NegativeSpec(frames_per_picture=3, synthetic_frames=4, random_boxes=4,
                             detectors=((320, 1.2, 0),))
    picture = np.random.default_rng(1).integers(0, 256, (300, 400)).astype(np.uint8)
    patches, sources = data.mine_negatives("train", spec, pictures=("free",), loader=lambda name: picture)
    assert patches.dtype == np.uint8 and patches.shape[1:] == (48, 48) and len(patches) == len(sources)
    assert {source.split("/")[0] for source in sources} == {"free", "synthetic"}
    assert "random" in {source.split("/")[1] for source in sources} <= {"haar", "random"}
    assert all(np.ptp(p) > 200 for p in patches)  # equalized: the full grey range
    # a picture that is all face gives nothing; only the procedural frames remain
    monkeypatch.setitem(data.FACE_REGIONS, "all_face", [(0, 0, 400, 300)])
    _, sources = data.mine_negatives("train", spec, pictures=("all_face",), loader=lambda name: picture)
    assert {source.split("/")[0] for source in sources} == {"synthetic"}
    again, _ = data.mine_negatives("train", spec, pictures=("free",), loader=lambda name: picture)
    other, _ = data.mine_negatives("val", spec, pictures=("free",), loader=lambda name: picture)
    assert np.array_equal(again, patches) and not np.array_equal(other[:5], patches[:5])  # seeded per split


def test_gate_rates_count_recall_and_false_accepts() -> None:
    from training.face_gate_task import gate_rates, threshold_table

    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    probs = np.array([0.9, 0.8, 0.6, 0.2, 0.7, 0.1, 0.1, 0.0])
    rates = gate_rates(labels, probs, 0.5)
    assert rates == {"face_recall": 0.75, "false_accept": 0.25, "accuracy": 0.75}
    sources = ["face"] * 4 + ["wall/haar", "wall/random", "sky/haar", "sky/random"]
    table = threshold_table(labels, probs, sources)
    assert table["false_accept_by_source_at_0.5"] == {"sky/haar": 0.0, "sky/random": 0.0, "wall/haar": 1.0,
                                                      "wall/random": 0.0}
    assert table["haar_false_accept"]["0.5"] == 0.5 and table["haar_patches"] == 2


def test_builder_is_tiny_and_answers_face_or_not() -> None:
    from training.architectures import face_gate
    from training.evaluate import keras_model_kind

    model = face_gate()
    assert model.count_params() < 5000 and model.output_shape == (None, 2)
    assert keras_model_kind(model) == "face_gate"


# --- device -------------------------------------------------------------------------------------

def test_gate_scores_crops_and_applies_its_threshold(gate_model: Path) -> None:
    grey = np.random.default_rng(0).integers(0, 256, (120, 160)).astype(np.uint8)
    box = Box(20, 10, 60, 60)
    p_face = FaceGate(gate_model, 0.5).score(grey[10:70, 20:80])
    assert 0.0 <= p_face <= 1.0
    lenient, strict = FaceGate(gate_model, 0.01), FaceGate(gate_model, 0.99)
    assert lenient.admits(grey, box) is (p_face >= 0.01) and strict.admits(grey, box) is (p_face >= 0.99)
    assert strict.checked == 1 and strict.rejected == int(p_face < 0.99)
    assert strict.admits(grey, Box(0, 0, 4, 4))  # too small to score: the pipeline skips it anyway
    assert strict.checked == 1


def test_tracker_asks_the_gate_only_for_detections_that_would_start_a_track() -> None:
    from device.config import TrackerSection
    from device.vision.face_tracker import FaceTracker

    small = np.random.default_rng(0).integers(0, 256, (120, 160)).astype(np.uint8)
    tracker = FaceTracker(TrackerSection())
    asked: list[Box] = []

    def refuse(box: Box) -> bool:
        asked.append(box)
        return False

    assert tracker.update([Box(10, 10, 40, 40)], small, 1.0, 0.0, admit=refuse).started == []
    assert tracker.tracks == [] and asked == [Box(10, 10, 40, 40)]
    started = tracker.update([Box(10, 10, 40, 40)], small, 1.0, 0.1).started  # no gate: starts
    asked.clear()
    changes = tracker.update([Box(11, 10, 40, 40), Box(90, 60, 30, 30)], small, 1.0, 0.2, admit=refuse)
    assert asked == [Box(90, 60, 30, 30)]  # the tracked face was not scored
    assert changes.started == [] and [t.track_id for t in tracker.tracks] == [started[0].track_id]


def test_app_builds_the_gate_and_it_vets_new_detections(gate_model: Path, face_model: Path, demo_video: Path,
                                                        tmp_path: Path) -> None:
    from device.app import App

    events = tmp_path / "events.jsonl"
    common = [("face.model", str(face_model), "--model"), ("source.uri", str(demo_video), "--source"),
              ("mqtt.url", "", "--no-mqtt"), ("events.out", str(events), "--events-out"),
              ("gate.enabled", "true", "--set"), ("gate.model", str(gate_model), "--set")]
    tracks = {}
    for threshold in ("0.01", "0.99"):
        config = load_config(None, env={}, overrides=[*common, ("gate.threshold", threshold, "--set")])
        app, summary = run_app(config)
        gate = app.pipeline.gate
        assert gate is not None and gate.checked > 0
        assert summary["tracks"] == gate.checked - gate.rejected  # every track was let through by the gate
        tracks[threshold] = summary["tracks"]
    assert tracks["0.99"] <= tracks["0.01"]
    # a face card where a gate card belongs is refused like any mismatched model
    wrong = build_gate_model(tmp_path / "wrong", kind="face")
    with pytest.raises(ModelCardError, match="card kind is 'face', not 'face_gate'"):
        App.build(load_config(None, env={}, overrides=[*common, ("gate.model", str(wrong), "--set")]))


def test_gate_section_is_validated(face_model: Path, tmp_path: Path) -> None:
    base = [("face.model", str(face_model), "--model")]
    assert set(field_hints(type(load_config(None, env={}, overrides=base).gate))) == {
        "enabled", "model", "threshold"}
    with pytest.raises(ConfigError, match=r"gate\.threshold .*must be in the range 0\.01 to 0\.99, not 1\.5"):
        load_config(None, env={}, overrides=[*base, ("gate.threshold", "1.5", "--set")])
    with pytest.raises(ConfigError, match=r"gate\.model .*does not exist.*gate\.enabled = false"):
        load_config(None, env={}, overrides=[*base, ("gate.enabled", "true", "--set"),
                                             ("gate.model", str(tmp_path / "none.tflite"), "--set")])
    # off: the model path is not looked at
    load_config(None, env={}, overrides=[*base, ("gate.enabled", "false", "--set"),
                                         ("gate.model", str(tmp_path / "none.tflite"), "--set")])


def test_cli_bad_gate_value_is_one_line_exit_2(face_model: Path) -> None:
    result = run_daemon("--model", str(face_model), "--source", "x.mp4", EDGE_EMOTION_GATE_THRESHOLD="2")
    assert_one_line_exit_2(result, "gate.threshold", "0.01 to 0.99")


# --- train -> convert -> card, on synthetic faces and mined patches -----------------------------

def test_train_and_convert_the_gate_on_synthetic_data(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from converters import quantize
    from tests.synthetic_faces import write_fer_csv
    from training import face_gate_data, face_gate_task, train

    spec = face_gate_data.NegativeSpec(frames_per_picture=2, synthetic_frames=24, random_boxes=6,
                                       detectors=((320, 1.2, 3),))
    cache: dict = {}

    def small_negatives(split: str, _spec=None):
        if split not in cache:
            cache[split] = face_gate_data.mine_negatives(split, spec, pictures=())
        return cache[split]

    monkeypatch.setattr(face_gate_task, "cached_negatives", small_negatives)
    data = write_fer_csv(tmp_path / "fer.csv", train_per_class=12, test_per_class=4)
    out = tmp_path / "run"
    assert train.main(["--model", "face_gate", "--data", str(data), "--out", str(out), "--epochs", "2",
                       "--batch-size", "16", "--label-smoothing", "0"]) == 0
    info = json.loads((out / "training.json").read_text())
    assert "non-face patches" in info["data"]["train"] and info["best_epoch"] in (1, 2)
    code = quantize.main(["--keras", str(out / "best.keras"), "--data", str(data), "--name", "gate",
                          "--out-dir", str(tmp_path / "models"), "--calibration", "32", "--max-drop", "100"])
    assert code == 0
    card = json.loads((tmp_path / "models" / "gate_int8.json").read_text())
    assert card["kind"] == "face_gate" and card["labels"] == list(GATE_LABELS)
    assert set(card["metrics"]["gate"]["thresholds"]["0.5"]) == {"face_recall", "false_accept", "accuracy"}
    assert "| threshold | face recall |" in (tmp_path / "models" / "gate_int8.md").read_text()
    FaceGate(tmp_path / "models" / "gate_int8.tflite", 0.5)  # loads in the device's shell
