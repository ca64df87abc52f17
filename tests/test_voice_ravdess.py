"""RAVDESS file-name parsing, actor selection and the loader, on generated files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from device.runtime.voice_labels import VOICE_LABELS
from tests.voice_fixtures import syllables
from training.data_errors import DataError
from training.ravdess_data import find_clips, parse_actors, parse_name, read_clip

SHARED_RAVDESS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ravdess"


def test_parse_name_reads_every_field():
    name = parse_name("Actor_17/03-01-06-02-01-02-17.flac")
    assert (name.modality, name.vocal_channel, name.intensity, name.statement, name.repetition,
            name.actor) == (3, 1, 2, 1, 2, 17)
    assert name.emotion == 5 and name.label == "fearful"
    assert parse_name("03-01-02-01-01-01-01.wav").label == "calm"


@pytest.mark.parametrize("bad, why", [
    ("notes.wav", "does not follow the RAVDESS convention"),
    ("03-01-01-01-01-01.wav", "does not follow"),  # six fields
    ("03-01-1-01-01-01-01.wav", "does not follow"),  # one-digit field
    ("03-01-09-01-01-01-01.wav", "emotion 09 is not 01-08"),
    ("03-01-00-01-01-01-01.flac", "emotion 00"),
    ("03-01-03-03-01-01-01.flac", "intensity 03"),
])
def test_bad_names_raise_a_data_error_naming_the_file(bad: str, why: str):
    with pytest.raises(DataError, match=why) as info:
        parse_name(Path("Actor_01") / bad)
    assert bad in str(info.value)


def test_parse_actors():
    assert parse_actors("1-16") == tuple(range(1, 17))
    assert parse_actors("17,18") == (17, 18)
    assert parse_actors(" 1-3, 9 ") == (1, 2, 3, 9)
    for bad in ("", "a-b", "5-2", "1--3"):
        with pytest.raises(DataError, match="actor selection"):
            parse_actors(bad)


def write_clip(root: Path, name: str, rate: int = 48_000) -> Path:
    path = root / f"Actor_{Path(name).stem[-2:]}" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = syllables(1.0)
    t_in = np.arange(int(len(audio) * rate / 16_000)) / rate
    soundfile.write(path, np.interp(t_in, np.arange(len(audio)) / 16_000, audio), rate)
    return path


def test_find_clips_selects_actors_reads_wav_and_flac_and_resamples(tmp_path: Path):
    write_clip(tmp_path, "03-01-05-01-01-01-01.wav")
    write_clip(tmp_path, "03-01-02-02-01-01-02.flac", rate=16_000)
    write_clip(tmp_path, "03-01-08-01-02-02-17.wav", rate=44_100)
    clips = find_clips(tmp_path, "1-2")
    assert [c.name.actor for c in clips] == [1, 2]
    assert [VOICE_LABELS[c.name.emotion] for c in clips] == ["angry", "calm"]
    for clip in clips:
        audio = read_clip(clip)
        assert audio.dtype == np.float32 and abs(len(audio) - 16_000) <= 1
    assert len(read_clip(find_clips(tmp_path, "17")[0])) in (15_999, 16_000)


def test_loader_errors_name_the_file(tmp_path: Path):
    with pytest.raises(DataError, match="no RAVDESS"):
        find_clips(tmp_path, "1-16")
    with pytest.raises(DataError, match="not found"):
        find_clips(tmp_path / "missing", "1")
    write_clip(tmp_path, "03-01-05-01-01-01-01.wav")
    (tmp_path / "Actor_01" / "recording.wav").write_bytes(b"RIFF")
    with pytest.raises(DataError, match=r"recording\.wav"):
        find_clips(tmp_path, "1")
    (tmp_path / "Actor_01" / "recording.wav").unlink()
    broken = tmp_path / "Actor_01" / "03-01-04-01-01-01-01.flac"
    broken.write_bytes(b"not audio at all")
    clip = next(c for c in find_clips(tmp_path, "1") if c.path == broken)
    with pytest.raises(DataError, match=r"03-01-04-01-01-01-01\.flac.*cannot be read"):
        read_clip(clip)


@pytest.mark.shared_data
def test_shared_ravdess_layout():
    if not SHARED_RAVDESS.is_dir():
        pytest.skip("../shared/datasets/ravdess is not present")
    train, val = find_clips(SHARED_RAVDESS, "1-16"), find_clips(SHARED_RAVDESS, "17-20")
    assert (len(train), len(val)) == (960, 240)
    assert not {c.name.actor for c in train} & {c.name.actor for c in val}
    assert np.bincount([c.name.emotion for c in val]).tolist() == [16, 32, 32, 32, 32, 32, 32, 32]


@pytest.mark.shared_data
@pytest.mark.slow
def test_shipped_voice_recipe_meets_the_target_on_unseen_actors():
    """The shipped model trained on every actor, so its recipe is checked on actors 17-20 by its
    twin trained without them (cross-validation fold 5); the shipped card must not pass its own
    fit on those actors off as an estimate."""
    models = Path(__file__).resolve().parents[1] / "models"
    model = models / "heldout" / "voice_cnn_actors01-16_int8.tflite"
    if not SHARED_RAVDESS.is_dir() or not model.is_file():
        pytest.skip("needs ../shared/datasets/ravdess and models/heldout/voice_cnn_actors01-16_int8.tflite")
    shipped = json.loads((models / "voice_cnn_int8.json").read_text())
    assert "trained on (a fit, not an estimate)" in shipped["metrics"]["split"]
    assert shipped["metrics"]["cross_validation"]["folds"] == 5
    from training.metrics import classification_report
    from training.voice_evaluation import voice_clip_predictions

    y_true, probs, labels = voice_clip_predictions(model, str(SHARED_RAVDESS), "17-20")
    report = classification_report(y_true, probs, labels)
    assert report["n"] == 240
    assert report["accuracy"] >= 0.55 and report["uar"] >= 0.55  # issue 4's floor; measured 0.700 / 0.684
