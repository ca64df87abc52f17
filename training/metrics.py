"""Classification metrics in plain numpy: shared by training reports, evaluation and benchmarks."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def top_k_accuracy(y_true: np.ndarray, probs: np.ndarray, k: int) -> float:
    top = np.argsort(-probs, axis=1)[:, :k]
    return float(np.mean(np.any(top == np.asarray(y_true)[:, None], axis=1)))


def classification_report(y_true: np.ndarray, probs: np.ndarray, labels: tuple[str, ...]) -> dict:
    """Accuracy, macro-F1, top-3, unweighted average recall and per-class precision/recall/F1."""
    y_true = np.asarray(y_true)
    y_pred = probs.argmax(axis=1)
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    tp = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = actual > 0
    return {
        "n": len(y_true),
        "accuracy": float(np.mean(y_pred == y_true)),
        "macro_f1": float(f1[present].mean()),
        "uar": float(recall[present].mean()),
        "top3": top_k_accuracy(y_true, probs, min(3, len(labels))),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]),
                   "f1": float(f1[i]), "support": int(actual[i])}
            for i, name in enumerate(labels)
        },
        "confusion_matrix": matrix.tolist(),
        "labels": list(labels),
    }
