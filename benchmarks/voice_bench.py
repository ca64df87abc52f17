"""Voice figures for `python -m benchmarks`: model invoke latency, feature cost, clip accuracy.

Latencies are single-thread medians on this machine; accuracy is per clip on RAVDESS actors
17-20 (the validation speakers) through the device's own code, measured only when the shared
data is present.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from device.audio.log_mel import WINDOW_SAMPLES, log_mel
from device.audio.voice_listener import BACKGROUND_SAMPLES, gate_window
from device.config import AudioSection
from device.runtime.tflite_model import TFLiteModel, invoke_latency_ms

VOICE_MODELS = {"int8": "voice_cnn_int8.tflite", "float32": "voice_cnn_float32.tflite"}


def median_ms(fn, repeats: int = 200, warmup: int = 10) -> float:
    for _ in range(warmup):
        fn()
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - start
    return float(np.median(times) * 1e3)


def run_voice_bench(shared: str | Path = "../shared/datasets", models: str | Path = "models",
                    actors: str = "17-20") -> dict:
    """One flat dict of voice figures; entries whose model or data is missing are left out."""
    rng = np.random.default_rng(0)
    recent = (0.1 * rng.standard_normal(BACKGROUND_SAMPLES)).astype(np.float32)  # what the gate reads
    window = recent[-WINDOW_SAMPLES:]
    audio = AudioSection()
    result: dict = {
        "voice_log_mel_ms_per_window": round(median_ms(lambda: log_mel(window)), 3),
        "voice_vad_ms_per_window": round(median_ms(lambda: gate_window(audio, recent)), 3),
    }
    for variant, name in VOICE_MODELS.items():
        path = Path(models) / name
        if path.is_file():
            latency = invoke_latency_ms(TFLiteModel(path, num_threads=1))
            result[f"voice_{variant}_invoke_median_ms"] = round(latency["median_ms"], 4)
            result[f"voice_{variant}_invoke_p95_ms"] = round(latency["p95_ms"], 4)
    ravdess = Path(shared) / "ravdess"
    int8 = Path(models) / VOICE_MODELS["int8"]
    if ravdess.is_dir() and int8.is_file():
        from training.metrics import classification_report
        from training.voice_evaluation import voice_clip_predictions

        y_true, probs, labels = voice_clip_predictions(int8, str(ravdess), actors)
        report = classification_report(y_true, probs, labels)
        result.update({"voice_int8_clip_accuracy": round(report["accuracy"], 4),
                       "voice_int8_clip_uar": round(report["uar"], 4), "voice_clips": report["n"],
                       "voice_actors": actors})
    return result
