"""A distillation teacher kept as an int8 .tflite instead of a .keras checkpoint.

The face teacher never ships to the Pi, but it is committed so distillation can be re-run: its
int8 conversion (`converters.quantize`, with its card and float-vs-int8 check) is a quarter of its
float weights and a tenth of a checkpoint with optimizer state. Distillation only needs its
probabilities, so it is scored here in batches with the same input and output quantization the
device applies (its inputs are whole pixel values: equalized faces, moved by whole pixels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.runtime.tflite_model import open_interpreter
from device.vision.preprocessing import dequantize, input_lookup_table


class TFLiteTeacher:
    """The slice of `keras.Model` that `training.train.training_targets` calls: shapes, `predict`."""

    def __init__(self, path: Path, num_threads: int = 2) -> None:
        self._interpreter, _ = open_interpreter(path, num_threads, "teacher model",
                                                "convert it again with converters.quantize")
        inputs, outputs = self._interpreter.get_input_details(), self._interpreter.get_output_details()
        self._input, self._output = inputs[0], outputs[0]
        self.input_shape = (None, *(int(d) for d in self._input["shape"][1:]))
        self.output_shape = (None, int(self._output["shape"][-1]))
        self._batch = 0

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], [batch, *self.input_shape[1:]])
            self._interpreter.allocate_tensors()
            self._input = self._interpreter.get_input_details()[0]
            self._output = self._interpreter.get_output_details()[0]
            self._batch = batch

    def predict(self, x: np.ndarray, batch_size: int = 256, verbose: int = 0) -> np.ndarray:
        """Probabilities for model inputs (equalized 0..255 pixels, as a Keras face model takes),
        quantized by the device's own lookup table."""
        del verbose  # Keras's signature; nothing to print
        table = input_lookup_table(self._input["dtype"], *self._input["quantization"])
        out = []
        for start in range(0, len(x), batch_size):
            chunk = table[np.clip(x[start:start + batch_size], 0, 255).astype(np.uint8)]
            self._resize(len(chunk))
            self._interpreter.set_tensor(self._input["index"], chunk)
            self._interpreter.invoke()
            raw = self._interpreter.get_tensor(self._output["index"])
            out.append(dequantize(raw, *self._output["quantization"]))
        return np.concatenate(out).astype(np.float32)
