"""`python -m training.fusion_evaluation`: face-only, voice-only, product rule, BEL and MoBEL side by side.

There is no recording here of one person's face and voice at the same moment, so this builds
class-matched PSEUDO-PAIRS: each FER2013 face is paired with a random RAVDESS clip of the same
class (over the 7 face classes; calm counts as neutral). The face and the voice in a pair come
from different people and different moments; they share only the label. That makes the two
modalities' errors independent, which real paired recordings would not be, so these figures
say how the fusion rules combine two independent opinions, not how well the daemon reads a
real person.

- Training pairs (for BEL and MoBEL): FER2013 Training faces x RAVDESS clips of the training actors.
- Held-out pairs (for every method): FER2013 PublicTest faces x clips of the validation actors,
  every PublicTest face used once, the clip drawn again for each of --pairings repetitions.

Face probabilities come from the device's FaceClassifier, voice probabilities from the device's
VoiceClassifier (whole clips scored as the daemon would), both on the int8 models. MoBEL (feature
level, `training/mobel.py`) takes the penultimate features of the float Keras checkpoints of the
same models (--face-features-model, --voice-features-model) on the same faces, clips and pairs; its
hyper-parameters are chosen on training-side pairs only (a fifth of the training faces with the
last quarter of the training actors held out). Writes the BEL model (--bel-out), the MoBEL model
(mobel.npz), report.json, report.md and confusion matrices into --out.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.audio.voice_classifier import VoiceClassifier
from device.config import FaceSection
from device.fusion.bel import BEL
from device.fusion.product_rule import product_rule
from device.runtime.labels import FACE_LABELS
from device.runtime.tflite_model import ModelLoadError
from device.runtime.voice_labels import VOICE_LABELS, VOICE_TO_FACE_INDEX, voice_to_face_probabilities
from device.vision.face_classifier import FaceClassifier
from training.data_errors import DataError
from training.fer_data import load_faces
from training.metrics import classification_report
from training.mobel import FeatureScaler, Grid, MoBEL, face_features, select, voice_features
from training.ravdess_data import clip_labels, find_clips, read_clip
from training.reports import plot_confusion

METHODS = ("face only", "voice only", "product rule", "BEL", "MoBEL")
CROSS_FITTED = "BEL cross-fitted on held-out pairs (diagnostic)"
MOBEL_CROSS_FITTED = "MoBEL cross-fitted on held-out pairs (diagnostic)"
JSON_KEYS = {"face only": "face_only", "voice only": "voice_only", "product rule": "product_rule",
             "BEL": "bel", "MoBEL": "mobel", CROSS_FITTED: "bel_cross_fitted",
             MOBEL_CROSS_FITTED: "mobel_cross_fitted"}
NOTICE = ("PSEUDO-PAIRS, not paired recordings: every face is paired with a RAVDESS clip of the same class "
          "from a different person; the two modalities' errors are independent here, unlike in real life.")


@dataclass
class Scored:
    """Model outputs for one side (training or held-out): face and voice probabilities with labels."""

    face_probs: np.ndarray  # (faces, 7)
    face_labels: np.ndarray
    voice_probs: np.ndarray  # (clips, 8)
    voice_labels: np.ndarray  # over the 8 voice classes
    voice_actors: np.ndarray
    faces: np.ndarray | None = None  # the raw faces behind face_probs (for feature-level fusion)
    clips: list | None = None  # the clips behind voice_probs
    face_features: np.ndarray | None = None  # penultimate features, unscaled (set by add_features)
    voice_features: np.ndarray | None = None

    @property
    def voice_face_probs(self) -> np.ndarray:
        return voice_to_face_probabilities(self.voice_probs)

    @property
    def voice_face_labels(self) -> np.ndarray:
        return VOICE_TO_FACE_INDEX[self.voice_labels]


def score_side(face_model: Path, voice_model: Path, fer: str, usage: str, ravdess: str, actors: str,
               max_faces: int, seed: int, flip_tta: bool) -> Scored:
    faces = load_faces(fer, usage)
    picked = np.arange(len(faces))
    if max_faces and len(picked) > max_faces:
        picked = np.sort(np.random.default_rng(seed).choice(len(picked), max_faces, replace=False))
    face_classifier = FaceClassifier(face_model, num_threads=1, flip_tta=flip_tta)
    face_probs = np.stack([face_classifier.classify(face) for face in faces.faces[picked]])
    clips = find_clips(ravdess, actors)
    voice_classifier = VoiceClassifier(voice_model, num_threads=1)
    voice_probs = np.stack([voice_classifier.classify_clip(read_clip(c)) for c in clips])
    return Scored(face_probs, faces.labels[picked], voice_probs, clip_labels(clips),
                  np.array([c.name.actor for c in clips]), faces.faces[picked], clips)


def pair_by_class(face_labels: np.ndarray, clip_face_labels: np.ndarray, seed: int) -> np.ndarray:
    """For every face, the index of a random clip of the same face class."""
    rng = np.random.default_rng(seed)
    pairs = np.empty(len(face_labels), dtype=np.int64)
    for label in np.unique(face_labels):
        pool = np.flatnonzero(clip_face_labels == label)
        if pool.size == 0:
            raise DataError(f"no voice clip of class {FACE_LABELS[label]} to pair faces with")
        where = np.flatnonzero(face_labels == label)
        pairs[where] = rng.choice(pool, size=where.size)
    return pairs


def pair_clips(side: Scored, seed: int, faces: np.ndarray | None = None,
               clips: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(faces, the clip paired with each): a random clip of the face's class for every face (faces and
    clips: subsets by index, default all). The same seed gives the same pairs."""
    faces = np.arange(len(side.face_labels)) if faces is None else faces
    clips = np.arange(len(side.voice_labels)) if clips is None else clips
    return faces, clips[pair_by_class(side.face_labels[faces], side.voice_face_labels[clips], seed)]


def paired_inputs(side: Scored, seed: int, faces: np.ndarray | None = None,
                  clips: np.ndarray | None = None) -> np.ndarray:
    """Each face's probabilities beside the mapped voice probabilities of a random clip of its class."""
    faces, pairs = pair_clips(side, seed, faces, clips)
    return np.hstack([side.face_probs[faces], side.voice_face_probs[pairs]])


@dataclass
class Scalers:
    """Each modality's penultimate features mapped to [0, 1] with training-side statistics."""

    face: FeatureScaler
    voice: FeatureScaler

    @classmethod
    def fit(cls, side: Scored, faces: np.ndarray | None = None, clips: np.ndarray | None = None) -> Scalers:
        faces = np.arange(len(side.face_labels)) if faces is None else faces
        clips = np.arange(len(side.voice_labels)) if clips is None else clips
        return cls(FeatureScaler.fit(side.face_features[faces]),
                   FeatureScaler.fit(side.voice_features[clips]))


def paired_features(side: Scored, seed: int, scalers: Scalers, faces: np.ndarray | None = None,
                    clips: np.ndarray | None = None) -> np.ndarray:
    """The same pairs as `paired_inputs` with the same seed, as scaled concatenated features."""
    faces, pairs = pair_clips(side, seed, faces, clips)
    return np.hstack([scalers.face.transform(side.face_features[faces]),
                      scalers.voice.transform(side.voice_features[pairs])])


def add_features(side: Scored, face_model: Path, voice_model: Path, flip_tta: bool) -> None:
    side.face_features = face_features(face_model, side.faces, flip_tta)
    side.voice_features = voice_features(voice_model, side.clips)


@dataclass
class FittedMobel:
    model: MoBEL
    scalers: Scalers
    info: dict


def train_mobel(side: Scored, grid: Grid, seed: int, log=None) -> FittedMobel:
    """Choose MoBEL's hyper-parameters on training-side pairs only, then train it on all of them.

    Inner split: a fifth of the training faces and the last quarter of the training actors are held
    out (speaker-independent, like the real test); every configuration of `grid` learns on the
    rest (scalers from the rest too) and is scored after every epoch on two pairings of the held-out
    part. The winner, with its best epoch count, is then trained on all training pairs (the same
    pairs BEL learns from). These inner pairs were seen by both models in training, so they reward
    trusting the voice far more than new speakers deserve; there is no unseen data to do better."""
    actors = np.unique(side.voice_actors)
    if len(actors) < 2:
        raise DataError("MoBEL's hyper-parameter selection needs two or more training actors")
    inner_actors = actors[-max(1, len(actors) // 4):]
    clip_val = np.isin(side.voice_actors, inner_actors)
    face_val = np.random.default_rng(seed).permutation(len(side.face_labels)) % 5 == 0
    faces_in, faces_out = np.flatnonzero(~face_val), np.flatnonzero(face_val)
    clips_in, clips_out = np.flatnonzero(~clip_val), np.flatnonzero(clip_val)
    scalers = Scalers.fit(side, faces_in, clips_in)
    x_in = paired_features(side, seed, scalers, faces_in, clips_in)
    x_out = np.vstack([paired_features(side, seed + 1 + k, scalers, faces_out, clips_out) for k in range(2)])
    y_out = np.tile(side.face_labels[faces_out], 2)
    config, rows = select(x_in, side.face_labels[faces_in], x_out, y_out, grid, len(FACE_LABELS), seed, log)
    scalers = Scalers.fit(side)
    inputs = paired_features(side, seed, scalers)
    model = config.build(inputs.shape[1], len(FACE_LABELS), seed)
    errors = model.fit(inputs, side.face_labels, epochs=config.epochs, seed=seed)
    info = {"chosen": {"experts": config.experts, "alpha": config.rate, "beta": config.rate,
                       "gamma": model.gamma, "gate_rates": [model.alpha_g, model.beta_g, model.gamma_g],
                       "weighting": config.weighting, "epochs": config.epochs},
            "inner_split": {"faces_learn": len(faces_in), "faces_held": len(faces_out),
                            "actors_held": [int(a) for a in inner_actors], "held_pairings": 2},
            "inner_validation_accuracy": max(r["val_accuracy"] for r in rows),
            "selection": rows, "train_error_per_epoch": errors,
            "features": {"face": int(side.face_features.shape[1]),
                         "voice": int(side.voice_features.shape[1])}}
    return FittedMobel(model, scalers, info)


def method_probabilities(inputs: np.ndarray, bel: BEL, mobel: MoBEL | None = None,
                         features: np.ndarray | None = None) -> dict[str, np.ndarray]:
    face, voice = np.split(inputs, 2, axis=1)
    probs = {"face only": face, "voice only": voice, "product rule": product_rule(face, voice),
             "BEL": bel.scores(inputs)}
    if mobel is not None:
        probs["MoBEL"] = mobel.scores(features)
    return probs


def train_bel(side: Scored, epochs: int, seed: int) -> tuple[BEL, list[float]]:
    inputs = paired_inputs(side, seed)
    bel = BEL.new(inputs=inputs.shape[1], classes=len(FACE_LABELS))
    return bel, bel.fit(inputs, side.face_labels, epochs=epochs, seed=seed)


def summarise(reports: list[dict]) -> dict:
    accuracies = [r["accuracy"] for r in reports]
    return {"accuracy": float(np.mean(accuracies)), "accuracy_sd": float(np.std(accuracies)),
            "uar": float(np.mean([r["uar"] for r in reports])),
            "macro_f1": float(np.mean([r["macro_f1"] for r in reports])), "n": reports[0]["n"]}


def cross_fitted(side: Scored, pairings: int, seed: int, pair, learn_and_score) -> dict | None:
    """A fusion model trained on half of the held-out pairs (half the actors, half the faces) and
    scored on the other half, both ways round: `pair(seed, faces, clips)` builds inputs,
    `learn_and_score(inputs, labels, test_inputs)` returns scores. Needs two or more actors."""
    actors = np.unique(side.voice_actors)
    if len(actors) < 2:
        return None
    clip_fold = np.isin(side.voice_actors, actors[len(actors) // 2:]).astype(int)
    face_fold = np.random.default_rng(seed).permutation(len(side.face_labels)) % 2
    reports = []
    for k in range(pairings):
        parts = {}
        for fold in (0, 1):
            faces, clips = np.flatnonzero(face_fold == fold), np.flatnonzero(clip_fold == fold)
            parts[fold] = pair(seed + 2000 + k, faces, clips)
        inputs = np.empty((len(side.face_labels), parts[0].shape[1]))
        for fold in (0, 1):
            inputs[face_fold == fold] = parts[fold]
        probs = np.empty((len(side.face_labels), len(FACE_LABELS)))
        for fold in (0, 1):
            learn, test = face_fold != fold, face_fold == fold
            probs[test] = learn_and_score(inputs[learn], side.face_labels[learn], inputs[test])
        reports.append(classification_report(side.face_labels, probs, FACE_LABELS))
    return summarise(reports)


def cross_fitted_bel(side: Scored, epochs: int, pairings: int, seed: int) -> dict | None:
    """BEL trained on half of the held-out pairs and scored on the other half, both ways round. Its
    inputs are then as reliable as in use, unlike the training-side outputs (overconfident: the
    models saw those samples) that the shipped BEL learns from; the gap between the two BEL rows is
    what that costs."""
    def learn_and_score(inputs: np.ndarray, labels: np.ndarray, test: np.ndarray) -> np.ndarray:
        bel = BEL.new(inputs=inputs.shape[1], classes=len(FACE_LABELS))
        bel.fit(inputs, labels, epochs=epochs, seed=seed)
        return bel.scores(test)

    return cross_fitted(side, pairings, seed, lambda s, faces, clips: paired_inputs(side, s, faces, clips),
                        learn_and_score)


def cross_fitted_mobel(side: Scored, fitted: FittedMobel, pairings: int, seed: int) -> dict | None:
    """MoBEL with the configuration chosen on the training side (and the training-side scalers),
    trained on half of the held-out pairs and scored on the other half, both ways round."""
    chosen = fitted.info["chosen"]

    def learn_and_score(inputs: np.ndarray, labels: np.ndarray, test: np.ndarray) -> np.ndarray:
        model = MoBEL.new(inputs.shape[1], len(FACE_LABELS), experts=chosen["experts"], alpha=chosen["alpha"],
                          beta=chosen["beta"], weighting=chosen["weighting"], seed=seed)
        model.fit(inputs, labels, epochs=chosen["epochs"], seed=seed)
        return model.scores(test)

    return cross_fitted(side, pairings, seed,
                        lambda s, faces, clips: paired_features(side, s, fitted.scalers, faces, clips),
                        learn_and_score)


def evaluate_pairs(side: Scored, bel: BEL, pairings: int, seed: int,
                   mobel: FittedMobel | None = None) -> tuple[dict, dict]:
    """Mean and spread of each method over `pairings` random pairings (every method on the same
    pairs); reports of the first one."""
    rows: dict[str, list[dict]] = {m: [] for m in METHODS if mobel is not None or m != "MoBEL"}
    first: dict[str, dict] = {}
    for k in range(pairings):
        features = None if mobel is None else paired_features(side, seed + 1000 + k, mobel.scalers)
        probs = method_probabilities(paired_inputs(side, seed + 1000 + k), bel,
                                     None if mobel is None else mobel.model, features)
        for method, p in probs.items():
            report = classification_report(side.face_labels, p, FACE_LABELS)
            rows[method].append(report)
            first.setdefault(method, report)
    return {m: summarise(reports) for m, reports in rows.items()}, first


def mobel_markdown(mobel: dict) -> str:
    chosen, split, dims = mobel["chosen"], mobel["inner_split"], mobel["features"]
    return (f"MoBEL (feature level, `training/mobel.py`): penultimate features of "
            f"{mobel['face_features_model']} ({dims['face']}-d, before the classifier, "
            f"global-average-pooled) and {mobel['voice_features_model']} ({dims['voice']}-d, before "
            "the dense logits), float Keras, each scaled to [0, 1] with training-side statistics. "
            f"Chosen on training-side pairs only ({split['faces_learn']} faces learn, "
            f"{split['faces_held']} faces x actors {split['actors_held']} held out): "
            f"K = {chosen['experts']} experts, alpha = {chosen['alpha']:g}, beta = {chosen['beta']:g}, "
            f"gamma = {chosen['gamma']:g}, expert weighting {chosen['weighting']}, "
            f"{chosen['epochs']} epochs; inner validation accuracy "
            f"{mobel['inner_validation_accuracy']:.4f} (pairs the models saw in training, hence far "
            "above the held-out figure).")


def report_markdown(result: dict) -> str:
    lines = ["# Face + voice fusion on class-matched pseudo-pairs", "", f"**{NOTICE}**", "",
             f"- held-out pairs: {result['held_out']['pairs']} FER2013 {result['held_out']['faces']} faces, "
             f"each with a clip of RAVDESS actors {result['held_out']['actors']} "
             f"({result['held_out']['clips']} clips), {result['pairings']} random pairings",
             f"- BEL trained on {result['training']['pairs']} pairs: FER2013 {result['training']['faces']} "
             f"faces x RAVDESS actors {result['training']['actors']}; final training error "
             f"{result['training']['bel_error_per_epoch'][-1]:.4f}",
             f"- models: face {result['face_model']} (flip TTA {'on' if result['face_flip_tta'] else 'off'})"
             f", voice {result['voice_model']}",
             f"- command: `{result['command']}`", "",
             "| method | accuracy (mean ± sd) | UAR | macro-F1 |", "| --- | --- | --- | --- |"]
    for method, row in result["results"].items():
        lines.append(f"| {method} | {row['accuracy']:.4f} ± {row['accuracy_sd']:.4f} | {row['uar']:.4f} | "
                     f"{row['macro_f1']:.4f} |")
    if CROSS_FITTED in result["results"]:
        lines += ["", "The cross-fitted rows are diagnostics, not shipped models: the fusion learned on "
                  "half of the held-out pairs (half the actors, half the faces) and scored on the other "
                  "half, both ways round, so its inputs are as reliable as in use. BEL and MoBEL proper "
                  "learn from training-side outputs and features, which are overconfident because the "
                  "models saw those samples."]
    if "mobel" in result:
        lines += ["", mobel_markdown(result["mobel"])]
    voice = result["voice_clips"]
    lines += ["", f"Voice model alone on the held-out clips (8 classes, per clip): accuracy "
              f"{voice['accuracy']:.4f}, UAR {voice['uar']:.4f}, n={voice['n']}.",
              "", "Training-side accuracy of the inputs BEL learned from (seen in training, so "
              f"optimistic): face {result['training']['face_accuracy']:.4f}, voice (7 classes) "
              f"{result['training']['voice_accuracy']:.4f}."]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    face_model, voice_model = Path(args.face_model), Path(args.voice_model)
    train = score_side(face_model, voice_model, args.fer, args.train_usage, args.ravdess, args.train_actors,
                       args.max_train_faces, args.seed, args.flip_tta)
    held = score_side(face_model, voice_model, args.fer, args.test_usage, args.ravdess, args.test_actors,
                      0, args.seed, args.flip_tta)
    bel, errors = train_bel(train, args.bel_epochs, args.seed)
    train_voice_accuracy = float(np.mean(train.voice_face_probs.argmax(1) == train.voice_face_labels))
    Path(args.bel_out).parent.mkdir(parents=True, exist_ok=True)
    bel.save(args.bel_out)
    mobel = None
    if args.mobel:
        for side in (train, held):
            add_features(side, Path(args.face_features_model), Path(args.voice_features_model), args.flip_tta)
        grid = Grid(experts=args.mobel_experts, rates=args.mobel_rates, weighting=args.mobel_weighting,
                    epochs=args.mobel_epochs)
        mobel = train_mobel(train, grid, args.seed, log=print if args.verbose else None)
        mobel.model.save(out / "mobel.npz")
    summary, first = evaluate_pairs(held, bel, args.pairings, args.seed, mobel)
    cross_fitted = cross_fitted_bel(held, args.bel_epochs, args.pairings, args.seed)
    if cross_fitted is not None:
        summary[CROSS_FITTED] = cross_fitted
    if mobel is not None:
        mobel_cross_fitted = cross_fitted_mobel(held, mobel, args.pairings, args.seed)
        if mobel_cross_fitted is not None:
            summary[MOBEL_CROSS_FITTED] = mobel_cross_fitted
    voice_report = classification_report(held.voice_labels, held.voice_probs, VOICE_LABELS)
    plot_confusion(voice_report, out / "voice_clips_confusion.png",
                   f"{voice_model.name} per clip, actors {args.test_actors}")
    for method, report in first.items():
        plot_confusion(report, out / f"confusion_{method.replace(' ', '_')}.png", f"{method} (pseudo-pairs)")
    result = {
        "notice": NOTICE,
        "command": " ".join(["python -m training.fusion_evaluation", shlex.join(sys.argv[1:])]).strip(),
        "face_model": str(face_model), "face_flip_tta": args.flip_tta, "voice_model": str(voice_model),
        "pairings": args.pairings,
        "held_out": {"faces": args.test_usage, "actors": args.test_actors, "pairs": len(held.face_labels),
                     "clips": len(held.voice_labels)},
        "training": {"faces": args.train_usage, "actors": args.train_actors, "pairs": len(train.face_labels),
                     "bel_error_per_epoch": errors, "bel_file": str(args.bel_out),
                     "face_accuracy": float(np.mean(train.face_probs.argmax(1) == train.face_labels)),
                     "voice_accuracy": train_voice_accuracy},
        "results": summary,
        "voice_clips": {k: voice_report[k] for k in ("accuracy", "uar", "macro_f1", "n", "confusion_matrix")},
    }
    if mobel is not None:
        result["mobel"] = {"face_features_model": args.face_features_model,
                           "voice_features_model": args.voice_features_model,
                           "file": str(out / "mobel.npz"), **mobel.info}
    (out / "report.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "report.md").write_text(report_markdown(result))
    return result


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(","))


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(","))


def _words(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(","))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--face-model", default="models/face_mini_xception_int8.tflite")
    parser.add_argument("--flip-tta", action=argparse.BooleanOptionalAction, default=FaceSection.flip_tta,
                        help="score faces as the daemon does with face.flip_tta (default: its default)")
    # The shipped voice model trained on actors 17-20 too; the pairs' voices are scored by the same recipe
    # trained without them (cross-validation fold 5), as a new speaker would be.
    parser.add_argument("--voice-model", default="models/heldout/voice_cnn_actors01-16_int8.tflite")
    parser.add_argument("--fer", default="../shared/datasets/fer2013/fer2013.csv.gz")
    parser.add_argument("--ravdess", default="../shared/datasets/ravdess")
    parser.add_argument("--train-usage", default="Training")
    parser.add_argument("--test-usage", default="PublicTest")
    parser.add_argument("--train-actors", default="1-16")
    parser.add_argument("--test-actors", default="17-20")
    parser.add_argument("--max-train-faces", type=int, default=10_000, help="0 = all training faces")
    parser.add_argument("--bel-epochs", type=int, default=10)
    parser.add_argument("--pairings", type=int, default=5, help="random pairings of the held-out faces")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/fusion")
    parser.add_argument("--bel-out", default="models/fusion_bel.json")
    parser.add_argument("--mobel", action=argparse.BooleanOptionalAction, default=True,
                        help="add MoBEL, feature-level fusion (needs the Keras checkpoints and TensorFlow)")
    parser.add_argument("--face-features-model", default="models/keras/face_mini_xception.keras",
                        help="Keras face model whose penultimate features MoBEL fuses")
    parser.add_argument("--voice-features-model", default="models/heldout/voice_cnn_actors01-16.keras")
    parser.add_argument("--mobel-experts", type=_ints, default=(2, 4, 8), help="K values to choose from")
    parser.add_argument("--mobel-rates", type=_floats, default=(3e-4, 1e-3, 3e-3),
                        help="learning rates to choose from (alpha = beta, gates alike)")
    parser.add_argument("--mobel-weighting", type=_words, default=("posterior", "none"),
                        help="expert steps scaled by the posterior h_k, or not (the equations literally)")
    parser.add_argument("--mobel-epochs", type=int, default=6, help="most epochs; the best is chosen")
    parser.add_argument("--verbose", action="store_true", help="print MoBEL's selection as it runs")
    args = parser.parse_args(argv)
    try:
        result = run(args)
    except (DataError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(NOTICE)
    for method, row in result["results"].items():
        print(f"{method}: accuracy {row['accuracy']:.4f} ± {row['accuracy_sd']:.4f}  "
              f"UAR {row['uar']:.4f}  n={row['n']}")
    print(json.dumps({JSON_KEYS[m]: round(r["accuracy"], 4) for m, r in result["results"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
