"""MediaPipe's BlazeFace (short range) on the downscaled grey frame, boxes framed as FER2013 frames faces.

The short-range model was trained at 128x128 for faces filling much of the picture; shrunk to
128 px, a 640x480 frame makes an 80 px face 16 px wide and the model misses it. The model is fully
convolutional, so instead its input is resized to the detection frame itself (320x240 at the
default `detect_width`): an 80 px face stays 40 px, the anchor grid grows with the frame (ceil(w/8)
x ceil(h/8) cells of 2 anchors plus ceil(w/16) x ceil(h/16) cells of 6), and one invoke covers the
frame without letterboxing or tiles. Grey frames go in as three equal channels.

BlazeFace's box is tighter than the face images the classifier was trained on, and not centred on
them: each box is turned into the FER2013 square around it with the `[blazeface]` framing
(`framing_scale` box widths wide, centre moved by `framing_offset_x/y` box widths), measured by
`python -m benchmarks.e2e.framing --kind blazeface` (docs/device.md, "Crop framing"). The tracker,
the crop and the events then all see the face as FER2013 framed it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.config import BlazeFaceSection, DetectorSection
from device.errors import DetectorError, ModelLoadError
from device.runtime.model_card_check import check_file_bytes, read_card
from device.runtime.native_output import native_output_to_debug_log
from device.runtime.tflite_model import open_interpreter
from device.vision.box_geometry import Box, expand_and_clip, shrink_to_width
from device.vision.ssd_anchors import decode_boxes, ssd_anchor_centres, weighted_nms

# Padding the detection frame to a multiple of the coarsest stride keeps every feature map an exact
# fraction of the input, so the anchor grid rebuilt here lines up with the model's cells.
COARSEST_STRIDE = 16
# Grey level 0..255 to the model's input range [-1, 1], as MediaPipe's image-to-tensor step does.
INPUT_LUT = (np.arange(256, dtype=np.float32) / 127.5 - 1.0).astype(np.float32)


def detector_card(model_path: Path) -> dict:
    """The detector's card, checked against the file: bytes, SHA-256, kind, input, anchor layout."""
    card_path = model_path.with_suffix(".json")
    card = read_card(card_path)
    where = f"model {model_path} vs card {card_path}"
    check_file_bytes(model_path, card, where)
    try:
        if card["kind"] != "face_detector":
            raise ModelLoadError(f"{where}: card kind is {card['kind']!r}, not 'face_detector'")
        anchors = card["anchors"]
        strides = [int(s) for s in anchors["strides"]]
        per_layer = int(anchors["anchors_per_layer"])
        if not strides or per_layer < 1 or card["input"]["dtype"] != "float32":
            raise ModelLoadError(f"{where}: the card's anchors or input are not a BlazeFace layout")
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{where}: card is missing or has a malformed field ({exc})") from None
    return card


class BlazeFaceDetector:
    """Same interface as HaarDetector: `downscale` once per frame, `detect_small` on detection frames."""

    def __init__(self, detector: DetectorSection, section: BlazeFaceSection, num_threads: int = 1) -> None:
        self.path = Path(section.model)
        if not self.path.is_file():
            raise ModelLoadError(f"face detector model {self.path} does not exist; point blazeface.model "
                                 "at models/detectors/face_detection_short_range.tflite")
        card = detector_card(self.path)
        self.name = str(card.get("name", self.path.stem))
        self.strides = [int(s) for s in card["anchors"]["strides"]]
        self.anchors_per_layer = int(card["anchors"]["anchors_per_layer"])
        self.detect_width = detector.detect_width
        self.min_score = section.min_score
        self.nms_iou = section.nms_iou
        self.framing = (section.framing_scale, section.framing_offset_x, section.framing_offset_y)
        self._interpreter, self.runtime = open_interpreter(
            self.path, num_threads, "face detector model", "copy it again with its card")
        inputs, outputs = self._interpreter.get_input_details(), self._interpreter.get_output_details()
        by_width = {int(o["shape"][-1]): o["index"] for o in outputs}
        if len(inputs) != 1 or len(outputs) != 2 or set(by_width) != {1, 16}:
            raise ModelLoadError(f"face detector model {self.path} is not a BlazeFace model (one input, "
                                 "a 16-value regressor and a score output)")
        self._input_index = inputs[0]["index"]
        self._regressors, self._logits = by_width[16], by_width[1]
        self._shape: tuple[int, int] | None = None
        self._anchors = np.zeros((0, 2), np.float32)
        self._tensor = np.zeros((1, 0, 0, 3), np.float32)

    def downscale(self, grey: np.ndarray) -> tuple[np.ndarray, float]:
        """The frame at detection resolution and the factor that maps its boxes back to full size."""
        return shrink_to_width(grey, self.detect_width)

    def _prepare(self, height: int, width: int) -> None:
        """Resize the model's input to the (padded) detection frame; once per frame size."""
        step = COARSEST_STRIDE
        padded = (-(-height // step) * step, -(-width // step) * step)
        if self._shape == padded:
            return
        rows, cols = padded
        try:
            with native_output_to_debug_log(f"the TFLite runtime resizing {self.path}"):
                self._interpreter.resize_tensor_input(self._input_index, [1, rows, cols, 3])
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise DetectorError(f"face detector model {self.path} cannot take a {cols}x{rows} frame ({exc}); "
                                "use the short-range BlazeFace model or another detector.detect_width"
                                ) from None
        self._anchors = ssd_anchor_centres(cols, rows, self.strides, self.anchors_per_layer)
        self._tensor = np.full((1, rows, cols, 3), INPUT_LUT[0], np.float32)
        self._shape = padded

    def detect_raw(self, small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """BlazeFace's own boxes (x0, y0, x1, y1) in pixels of `small`, after suppression, and scores."""
        height, width = small.shape
        self._prepare(height, width)
        rows, cols = self._shape
        self._tensor[0, :height, :width, :] = INPUT_LUT[small][:, :, None]
        self._interpreter.set_tensor(self._input_index, self._tensor)
        self._interpreter.invoke()
        regressors = self._interpreter.get_tensor(self._regressors)[0]
        if len(regressors) != len(self._anchors):
            raise DetectorError(f"face detector model {self.path} predicts {len(regressors)} boxes for a "
                                f"{cols}x{rows} frame where its card's anchors give {len(self._anchors)}")
        boxes, scores = decode_boxes(regressors, self._interpreter.get_tensor(self._logits)[0], self._anchors,
                                     cols, rows, self.min_score)
        boxes, scores = weighted_nms(boxes, scores, self.nms_iou)
        return boxes * np.array([cols, rows, cols, rows], np.float32), scores

    def detect_small(self, small: np.ndarray, factor: float) -> list[Box]:
        """Detect on an already downscaled frame; FER2013-framed square boxes in full-frame pixels."""
        boxes, _ = self.detect_raw(small)
        # A face near the frame's edge has a square that reaches past it; the part inside the frame
        # is what can be cropped, and the tracker's face patch must lie inside the frame too (a box
        # past the top edge once left a track without a patch, held for seconds after its face).
        width, height = round(small.shape[1] * factor), round(small.shape[0] * factor)
        framed = (expand_and_clip(fer_square(box, factor, *self.framing), 0.0, width, height)
                  for box in boxes)
        return [box for box in framed if box.w > 0 and box.h > 0]


def fer_square(box: np.ndarray, factor: float, scale: float, offset_x: float, offset_y: float) -> Box:
    """The square FER2013 would have cropped around a BlazeFace box (x0, y0, x1, y1), in full-frame pixels.

    The side is `scale` box widths and both offsets are in box widths too: FER2013's images are
    square, so one length sets the crop, and the offsets then hold for any face size.
    """
    x0, y0, x1, y1 = (float(v) * factor for v in box)
    width = x1 - x0
    side = scale * width
    cx = (x0 + x1) / 2 + offset_x * width
    cy = (y0 + y1) / 2 + offset_y * width
    return Box(round(cx - side / 2), round(cy - side / 2), round(side), round(side))
