"""What a training run needs from a dataset, whatever the modality."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Task:
    """Arrays for fitting plus the two modality-specific pieces: augmentation and evaluation.

    `augment` maps a float32 training batch to an augmented one (TensorFlow ops, run in the
    input pipeline). `evaluate` returns (true labels, probabilities) for the report; for voice
    it aggregates window scores per clip, so it is not just `model.predict(x_val)`. `predict`
    scores samples for a teacher's distillation targets (faces: averaged with their mirror image,
    as the device scores them, and optionally shifted copies). `clean` turns training samples
    into un-augmented model inputs (voice: the centre window of each longer crop), the inputs
    batch-norm statistics are re-estimated on.
    """

    labels: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    augment: Callable
    evaluate: Callable
    description: dict = field(default_factory=dict)
    extras: Callable | None = None
    predict: Callable = field(default=lambda model, x: model.predict(x, batch_size=256, verbose=0))
    """(model, samples) -> probabilities, as the modality scores them (used for teachers' targets)."""
    clean: Callable = field(default=lambda samples: samples)
    mix: Callable | None = None
    """(x, targets, weights) -> the same, blended across a batch after `augment` (voice: mixup);
    None = off."""
