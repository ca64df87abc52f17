"""One TFLite model behind one interpreter, created once and invoked in a tight loop.

The interpreter comes from ai-edge-litert (the maintained runtime, with XNNPACK), falling back to
tflite-runtime (frozen, much slower) and then to TensorFlow's own copy when it happens to be
installed (training machines). The device never needs TensorFlow.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.errors import ModelLoadError
from device.runtime.native_output import native_output_to_debug_log
from device.vision.preprocessing import dequantize

_RUNTIMES = (
    ("ai_edge_litert.interpreter", "Interpreter"),
    ("tflite_runtime.interpreter", "Interpreter"),
    ("tensorflow.lite", "Interpreter"),
)


def interpreter_class() -> tuple[type, str]:
    """Return the first importable Interpreter class and the module it came from."""
    for module_name, attr in _RUNTIMES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        return getattr(module, attr), module_name
    raise ModelLoadError(
        "no TFLite interpreter is installed: pip install ai-edge-litert "
        "(or tflite-runtime on 32-bit Raspberry Pi OS)"
    )


def open_interpreter(path: Path, num_threads: int, what: str, remedy: str) -> tuple[object, str]:
    """An allocated interpreter for `path` and the runtime it came from; a file that is not a
    TFLite model is one ModelLoadError naming `what` it was meant to be and the `remedy`."""
    cls, runtime = interpreter_class()
    try:
        with native_output_to_debug_log(f"the TFLite runtime loading {path}"):
            interpreter = cls(model_path=str(path), num_threads=num_threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"{what} {path} is not a valid TFLite model ({exc}); {remedy}") from None
    return interpreter, runtime


@dataclass(frozen=True)
class TensorSpec:
    """What the model expects or returns: shape, dtype and quantization."""

    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int


class TFLiteModel:
    """A loaded .tflite with one input and one output, ready to invoke."""

    def __init__(self, path: str | Path, num_threads: int = 1) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelLoadError(f"model file {self.path} does not exist")
        self._interpreter, self.runtime = open_interpreter(
            self.path, num_threads, "model file", "copy it again or rebuild it with `make quantize`")
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelLoadError(
                f"model {self.path} has {len(inputs)} inputs and {len(outputs)} outputs; "
                "edge-emotion models have exactly one of each"
            )
        self.input = _spec(inputs[0])
        self.output = _spec(outputs[0])
        self._input_index = inputs[0]["index"]
        self._output_index = outputs[0]["index"]

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """Run one input already in the model's dtype; return the output as float32."""
        self._interpreter.set_tensor(self._input_index, tensor)
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._output_index)
        return dequantize(raw, self.output.scale, self.output.zero_point)


def _spec(details: dict) -> TensorSpec:
    scale, zero_point = details.get("quantization", (0.0, 0))
    return TensorSpec(
        shape=tuple(int(d) for d in details["shape"]),
        dtype=np.dtype(details["dtype"]),
        scale=float(scale),
        zero_point=int(zero_point),
    )


def invoke_latency_ms(model: TFLiteModel, repeats: int = 300, warmup: int = 20) -> dict[str, float]:
    """Median and p95 of one invoke on a fixed in-range input, in milliseconds."""
    spec = model.input
    tensor = np.zeros(spec.shape, dtype=spec.dtype)
    for _ in range(warmup):
        model.invoke(tensor)
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        model.invoke(tensor)
        times[i] = time.perf_counter() - start
    return {"median_ms": float(np.median(times) * 1e3), "p95_ms": float(np.percentile(times, 95) * 1e3)}
