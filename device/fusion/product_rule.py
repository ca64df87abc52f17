"""Face + voice → one emotion over the seven face classes.

The product rule (weighted log-linear pooling, p ∝ face^w_f · voice^w_v) is the simple rule that
scored best in the source system: a class wins only when both modalities find it plausible, and
a confident modality outweighs an unsure one. BEL is the learned alternative (device/bel.py).
A modality that is absent, silent or older than `stale_after_s` drops out and the other stands
alone; with neither there is nothing to report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.fusion.bel import BEL
from device.runtime.labels import FACE_LABELS
from device.runtime.tflite_model import ModelLoadError

METHODS = ("product", "bel", "none")
PROBABILITY_FLOOR = 1e-4  # keeps one near-zero probability from vetoing a class outright


def product_rule(face: np.ndarray | None, voice: np.ndarray | None, face_weight: float = 1.0,
                 voice_weight: float = 1.0) -> np.ndarray | None:
    """Weighted log-linear pooling of two distributions over the same classes; one alone passes
    through (normalised); neither gives None."""
    present = [(np.asarray(p, dtype=np.float64), w) for p, w in ((face, face_weight), (voice, voice_weight))
               if p is not None]
    if not present:
        return None
    log_pool = sum(w * np.log(np.maximum(p, PROBABILITY_FLOOR)) for p, w in present)
    pooled = np.exp(log_pool - log_pool.max(axis=-1, keepdims=True))
    return (pooled / pooled.sum(axis=-1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class FusedEmotion:
    probabilities: np.ndarray  # over FACE_LABELS
    method: str  # "product", "bel", or "face" / "voice" when only that modality was usable
    modalities: tuple[str, ...]

    @property
    def dominant(self) -> str:
        return FACE_LABELS[int(np.argmax(self.probabilities))]


class Fusion:
    """Keyword arguments are the config's [fusion] keys, so `Fusion(**config_fusion)` works."""

    def __init__(self, method: str = "product", face_weight: float = 1.0, voice_weight: float = 1.0,
                 stale_after_s: float = 2.0, bel_model: str | Path = "models/fusion_bel.json") -> None:
        if method not in METHODS:
            raise ValueError(f"fusion.method = {method!r}; use one of {', '.join(METHODS)}")
        self.method, self.face_weight, self.voice_weight = method, face_weight, voice_weight
        self.stale_after_s = stale_after_s
        self.bel: BEL | None = None
        if method == "bel":
            self.bel = BEL.load(bel_model)
            if self.bel.inputs != 2 * len(FACE_LABELS):
                raise ModelLoadError(f"BEL fusion model {bel_model} takes {self.bel.inputs} inputs; fusion "
                                     f"feeds {2 * len(FACE_LABELS)} (face + voice over the face classes)")

    def _fresh(self, probs: np.ndarray | None, timestamp: float | None, now: float) -> np.ndarray | None:
        if probs is None or timestamp is None or now - timestamp > self.stale_after_s:
            return None
        return probs

    def fuse(self, face: np.ndarray | None, face_time: float | None, voice: np.ndarray | None,
             voice_time: float | None, now: float) -> FusedEmotion | None:
        """Fuse face probabilities and voice probabilities (already mapped onto the face classes),
        each with the time it was measured; None when fusion is off or nothing is fresh."""
        if self.method == "none":
            return None
        face, voice = self._fresh(face, face_time, now), self._fresh(voice, voice_time, now)
        if face is None and voice is None:
            return None
        if face is None or voice is None:
            only = "face" if voice is None else "voice"
            return FusedEmotion(product_rule(face, voice), only, (only,))
        if self.bel is not None:
            scores = self.bel.scores(np.concatenate([face, voice])[None])[0].astype(np.float32)
            return FusedEmotion(scores, "bel", ("face", "voice"))
        return FusedEmotion(product_rule(face, voice, self.face_weight, self.voice_weight), "product",
                            ("face", "voice"))
