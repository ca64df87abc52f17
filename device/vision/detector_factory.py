"""`detector.kind` → the face detector the pipeline runs; what every detector offers the pipeline.

Haar and BlazeFace differ in what they cost and find, not in how the pipeline uses them: the frame
is shrunk once per frame (the tracker follows faces on that small frame too), and on detection
frames the detector returns full-frame boxes framed as FER2013 framed its faces.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from device.config import Config
from device.vision.box_geometry import Box


class FaceDetector(Protocol):
    def downscale(self, grey: np.ndarray) -> tuple[np.ndarray, float]: ...

    def detect_small(self, small: np.ndarray, factor: float) -> list[Box]: ...


def build_detector(config: Config) -> FaceDetector:
    """The configured detector, loaded and checked; a StartupError (exit 2) when it cannot be."""
    if config.detector.kind == "blazeface":
        from device.vision.blazeface_detector import BlazeFaceDetector

        return BlazeFaceDetector(config.detector, config.blazeface, config.device.num_threads)
    from device.vision.haar_detector import HaarDetector

    return HaarDetector(config.detector)
