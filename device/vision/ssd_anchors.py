"""SSD anchors, box decoding and weighted non-maximum suppression for MediaPipe's BlazeFace models.

BlazeFace predicts, for every anchor (a grid cell centre of one of its feature maps), a box offset
and size in input pixels plus one face logit. The anchor layout is not stored in the .tflite, so
it is rebuilt here exactly as MediaPipe's SsdAnchorsCalculator builds it with `fixed_anchor_size`
(every anchor is 1 x 1 and only its centre matters); the grid each model needs is in its card
(`models/detectors/*.json`, "anchors"). Pure numpy, so it is tested without a model or a camera.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def ssd_anchor_centres(width: int, height: int, strides: Sequence[int], anchors_per_layer: int) -> np.ndarray:
    """(N, 2) anchor centres (x, y) in [0, 1], in the order the model emits its predictions.

    Consecutive layers with the same stride share one feature map: their anchors are merged per
    cell (MediaPipe's order), so short range (strides 8, 16, 16, 16 with 2 anchors each: one at
    the layer's scale and one interpolated) has 16x16 cells of 2 and 8x8 cells of 6 = 896.
    Full range (stride 4, no interpolated scale) has 48x48 cells of 1 = 2304.
    """
    centres = []
    layer = 0
    while layer < len(strides):
        same = layer
        while same < len(strides) and strides[same] == strides[layer]:
            same += 1
        per_cell = anchors_per_layer * (same - layer)
        cols, rows = math.ceil(width / strides[layer]), math.ceil(height / strides[layer])
        ys, xs = np.meshgrid((np.arange(rows, dtype=np.float32) + 0.5) / rows,
                             (np.arange(cols, dtype=np.float32) + 0.5) / cols, indexing="ij")
        cell_centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(cell_centres, per_cell, axis=0))
        layer = same
    return np.concatenate(centres).astype(np.float32)


def decode_boxes(regressors: np.ndarray, logits: np.ndarray, anchors: np.ndarray, width: int, height: int,
                 min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (x0, y0, x1, y1) in [0, 1] of the input and their scores, for scores >= `min_score`.

    Each regressor row starts (dx, dy, w, h) in input pixels relative to its anchor's centre (the
    rest are six keypoints, unused here). Logits are clipped to +-100 before the sigmoid as
    MediaPipe does, so an extreme logit cannot overflow.
    """
    regressors = regressors.reshape(len(anchors), -1)
    logits = logits.reshape(len(anchors))
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))
    keep = np.flatnonzero(scores >= min_score)
    raw = regressors[keep, :4] / np.array([width, height, width, height], np.float32)
    cx = raw[:, 0] + anchors[keep, 0]
    cy = raw[:, 1] + anchors[keep, 1]
    half_w, half_h = raw[:, 2] / 2, raw[:, 3] / 2
    boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
    return boxes.astype(np.float32), scores[keep].astype(np.float32)


def pairwise_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box with each of `boxes`; 0 where a box has no area."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = max(0.0, float((box[2] - box[0]) * (box[3] - box[1])))
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray,
                 iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED suppression: each kept box is the score-weighted mean of the boxes it
    suppresses (itself included) and keeps the highest score among them.

    BlazeFace fires on several neighbouring anchors per face; averaging them gives a steadier box
    than keeping the single best one, which matters because the crop follows the box.
    """
    order = np.argsort(-scores, kind="stable")
    remaining = order
    kept_boxes, kept_scores = [], []
    while len(remaining):
        best = remaining[0]
        overlap = pairwise_iou(boxes[best], boxes[remaining])
        group = remaining[overlap > iou_threshold]
        if len(group) == 0:  # a degenerate box overlaps nothing, not even itself
            group = remaining[:1]
        weights = scores[group]
        kept_boxes.append((boxes[group] * weights[:, None]).sum(axis=0) / weights.sum())
        kept_scores.append(scores[best])
        remaining = remaining[~np.isin(remaining, group)]
    if not kept_boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    return np.array(kept_boxes, np.float32), np.array(kept_scores, np.float32)
