"""OpenCV Haar face detection on a downscaled grey frame.

Haar costs grow with the pixel count and the number of scales searched, so detection runs on a
frame shrunk to `detect_width` pixels wide, with a minimum face size that skips the tiny scales
nobody stands far enough away to need. Boxes come back in full-frame pixels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from device.config import DetectorSection
from device.errors import DetectorError
from device.vision.box_geometry import Box, scale_box, shrink_to_width

# alt2 rather than `default`: on make e2e (FER2013 faces, 80-260 px) it finds 70% of single faces
# against 62% at the same cost, most of the difference in faces under 110 px (docs/device.md).
DEFAULT_CASCADE = "haarcascade_frontalface_alt2.xml"



def default_cascade_path() -> Path:
    return Path(cv2.data.haarcascades) / DEFAULT_CASCADE


class HaarDetector:
    def __init__(self, section: DetectorSection) -> None:
        path = Path(section.cascade) if section.cascade else default_cascade_path()
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise DetectorError(f"Haar cascade {path} cannot be loaded; reinstall opencv-python-headless<5 "
                                "or point detector.cascade at a cascade XML")
        self.detect_width = section.detect_width
        self.scale_factor = section.scale_factor
        self.min_neighbors = section.min_neighbors
        self.min_size = section.min_size

    def downscale(self, grey: np.ndarray) -> tuple[np.ndarray, float]:
        """The frame at detection resolution and the factor that maps its boxes back to full size."""
        return shrink_to_width(grey, self.detect_width)

    def detect_small(self, small: np.ndarray, factor: float) -> list[Box]:
        """Detect on an already downscaled frame; boxes in full-frame pixels."""
        found = self._cascade.detectMultiScale(small, scaleFactor=self.scale_factor,
                                               minNeighbors=self.min_neighbors,
                                               minSize=(self.min_size, self.min_size))
        return [scale_box(Box(*map(int, b)), factor) for b in found]
