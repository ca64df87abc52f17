"""Face boxes as (x, y, w, h) in full-frame pixels, and the arithmetic the detector and tracker share."""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np


class Box(NamedTuple):
    x: int
    y: int
    w: int
    h: int

    def as_dict(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h}


def iou(a: Box, b: Box) -> float:
    """Intersection over union; 0 for disjoint boxes."""
    ix = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    inter = ix * iy
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0


def shrink_to_width(grey: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    """The frame at detection resolution (`width` wide, same aspect) and the factor that maps its
    boxes back to full size; a frame already that narrow is used as it is."""
    height, full_width = grey.shape
    if full_width <= width:
        return grey, 1.0
    factor = full_width / width
    return cv2.resize(grey, (width, round(height / factor)), interpolation=cv2.INTER_AREA), factor


def scale_box(box: Box, factor: float) -> Box:
    """Map a box between the detection resolution and the full frame."""
    return Box(round(box.x * factor), round(box.y * factor), round(box.w * factor), round(box.h * factor))


def expand_and_clip(box: Box, margin: float, width: int, height: int) -> Box:
    """Grow a box by `margin` of its size on every side, then keep it inside the frame.

    FER2013's crops match the Haar box itself (median margin 0.00, offset 0.00; docs/device.md,
    "Crop framing"), so the daemon's default margin is 0; a margin frames faces wider than the
    model was trained on.
    """
    dx, dy = round(box.w * margin), round(box.h * margin)
    x0, y0 = max(0, box.x - dx), max(0, box.y - dy)
    x1, y1 = min(width, box.x + box.w + dx), min(height, box.y + box.h + dy)
    return Box(x0, y0, max(0, x1 - x0), max(0, y1 - y0))


def inset_box(box: Box, inset: float) -> Box:
    """The middle of a box: `inset` of its size cut from every side."""
    dx, dy = round(box.w * inset), round(box.h * inset)
    return Box(box.x + dx, box.y + dy, box.w - 2 * dx, box.h - 2 * dy)


def crop(frame: np.ndarray, box: Box) -> np.ndarray:
    """A view (no copy) of the frame inside `box`."""
    return frame[box.y:box.y + box.h, box.x:box.x + box.w]
