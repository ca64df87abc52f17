"""Refuse a model whose card and interpreter disagree, before the first frame.

A .tflite copied next to the wrong card (or a card edited by hand) would otherwise run and publish
confident nonsense: a 64x64 model fed 48x48 crops, uint8 input fed int8 bytes, or an output order
that no longer matches the labels in the events.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from device.errors import ModelCardError
from device.runtime.tflite_model import TFLiteModel


@dataclass(frozen=True)
class ModelIdentity:
    """What events say about the model that produced them."""

    name: str
    version: str  # first 12 hex digits of the file's SHA-256: changes whenever the bytes do

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


def read_card(card_path: Path) -> dict:
    try:
        return json.loads(card_path.read_text())
    except FileNotFoundError:
        raise ModelCardError(f"model card {card_path} does not exist; every model ships with its JSON card "
                             "(same name, .json): copy it along or rebuild with `make quantize`") from None
    except (OSError, ValueError) as exc:
        raise ModelCardError(f"model card {card_path} cannot be read as JSON ({exc})") from None


def check_file_bytes(path: Path, card: dict, where: str) -> str:
    """The file's SHA-256, once its size and digest match the card's; every card is checked this way."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if "sha256" not in card:
        raise ModelCardError(f"{where}: the card has no sha256 of the model file (made by an older "
                             "converter); rebuild both with `make quantize`")
    if card.get("file_bytes") != len(data) or card["sha256"] != digest:
        raise ModelCardError(f"{where}: the file is not the model this card describes ({len(data):,} bytes, "
                             f"SHA-256 {digest[:12]}…; the card says {card.get('file_bytes')!r} bytes, "
                             f"{str(card['sha256'])[:12]}…); copy the model and its card together, or "
                             "rebuild both with `make quantize`")
    return digest


def check_model_card(model: TFLiteModel, card_path: Path, kind: str,
                     expected_labels: tuple[str, ...]) -> ModelIdentity:
    """Compare the file's bytes (size, SHA-256), input shape, dtype, quantization and labels with
    the card; return the identity events carry. The face and the voice model both go through it."""
    card = read_card(card_path)
    where = f"model {model.path} vs card {card_path}"
    digest = check_file_bytes(model.path, card, where)
    try:
        card_in, labels = card["input"], card["labels"]
        problems = []
        if card.get("kind", kind) != kind:
            problems.append(f"card kind is {card['kind']!r}, not {kind!r}")
        if tuple(card_in["shape"]) != model.input.shape:
            problems.append(f"input shape {model.input.shape} but card says {tuple(card_in['shape'])}")
        if card_in["dtype"] != model.input.dtype.name:
            problems.append(f"input dtype {model.input.dtype.name} but card says {card_in['dtype']}")
        if (abs(float(card_in["scale"]) - model.input.scale) > 1e-6 * max(1.0, model.input.scale)
                or int(card_in["zero_point"]) != model.input.zero_point):
            problems.append(f"input quantization ({model.input.scale:g}, {model.input.zero_point}) "
                            f"but card says ({card_in['scale']:g}, {card_in['zero_point']})")
        if len(labels) != model.output.shape[-1]:
            problems.append(f"{model.output.shape[-1]} outputs but card lists {len(labels)} labels")
        elif tuple(labels) != expected_labels:
            problems.append(f"card labels {labels} are not the {kind} labels {list(expected_labels)} "
                            "in that order")
        name = str(card.get("name", model.path.stem))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelCardError(f"{where}: card is missing or has a malformed field ({exc})") from None
    if problems:
        raise ModelCardError(f"{where}: {'; '.join(problems)}; use the card that came with this model "
                             "or rebuild both with `make quantize`")
    return ModelIdentity(name=name, version=digest[:12])
