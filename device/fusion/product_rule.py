"""Face + voice → one emotion over the seven face classes.

The product rule (weighted log-linear pooling, p ∝ face^w_f · voice^w_v) is the simple rule that
scored best in the source system: a class wins only when both modalities find it plausible, and
a confident modality outweighs an unsure one. BEL is the learned alternative (device/fusion/bel.py).
The pipeline fuses only a fresh, voiced reading with the likely speaker's face; otherwise events
carry the face alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device.config import FusionSection
from device.fusion.bel import BEL
from device.runtime.labels import FACE_LABELS
from device.runtime.tflite_model import ModelLoadError

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
    method: str  # "product" or "bel"


class Fusion:
    """Fuses a face with a voice as the config's [fusion] section says.

    Only the pipeline decides whether a voice reading is fresh enough to fuse (fusion.stale_after_s)
    and builds no Fusion at all with method "none", so both modalities are always present here.
    """

    def __init__(self, section: FusionSection) -> None:
        self.section = section
        self.bel: BEL | None = None
        if section.method == "bel":
            self.bel = BEL.load(section.bel_model)
            if self.bel.inputs != 2 * len(FACE_LABELS):
                raise ModelLoadError(f"BEL fusion model {section.bel_model} takes {self.bel.inputs} inputs; "
                                     f"fusion feeds {2 * len(FACE_LABELS)} (face + voice over the face "
                                     "classes)")

    def fuse(self, face: np.ndarray, voice: np.ndarray) -> FusedEmotion:
        """Face probabilities and voice probabilities (already mapped onto the face classes) → one."""
        if self.bel is not None:
            scores = self.bel.scores(np.concatenate([face, voice])[None])[0].astype(np.float32)
            return FusedEmotion(scores, "bel")
        return FusedEmotion(product_rule(face, voice, self.section.face_weight, self.section.voice_weight),
                            "product")
