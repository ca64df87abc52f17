"""The device pipeline against the naive loop of the source systems, on generated 640x480 clips.

    python -c "from benchmarks.pipeline_bench import run_pipeline_bench; run_pipeline_bench()"

Pipeline: the daemon's own code (the application object, `device.app.App`), one thread for OpenCV
and the interpreter, events published to a loopback mosquitto when installed. Naive: what the
source write-ups do on every frame: Haar at full resolution (scaleFactor 1.3), then a Keras
`model.predict` per face, no tracking. RSS is the daemon's own peak (VmHWM), run as a separate
process on the one-face clip; this process has TensorFlow loaded for the naive loop and would say
nothing about the daemon.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from demo.clip import frames, write_video
from demo.local_broker import MosquittoBroker, mosquitto_binary
from device.app import App
from device.config import DEFAULT_FACE_MODEL, GateSection, load_config
from device.vision.haar_detector import default_cascade_path
from device.vision.preprocessing import FACE_SIZE

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before the lazy TensorFlow imports below
KERAS_FACE_MODEL = "models/keras/face_mini_xception.keras"
STAGES = ("capture", "detect", "track", "preprocess", "infer", "smooth", "publish")


def bench_model(workdir: Path) -> tuple[Path, str]:
    """The shipped int8 model, or (before training) the same architecture untrained: same cost."""
    if Path(DEFAULT_FACE_MODEL).is_file():
        return Path(DEFAULT_FACE_MODEL), Path(DEFAULT_FACE_MODEL).stem
    from converters.model_card import build_card, write_card
    from converters.quantize import convert
    from device.runtime.labels import FACE_LABELS
    from training.architectures import mini_xception

    model = mini_xception()
    calibration = np.random.default_rng(0).integers(0, 256, (64, FACE_SIZE, FACE_SIZE, 1)).astype(np.float32)
    path = workdir / "untrained_mini_xception_int8.tflite"
    path.write_bytes(convert(model, calibration))
    write_card(build_card(path, architecture=model.name, parameters=int(model.count_params()),
                          labels=FACE_LABELS, preprocessing="benchmark stand-in", training={}, metrics={},
                          kind="face"), path)
    return path, "untrained mini_xception (no shipped model yet)"


def pipeline_run(clip: Path, model: Path, broker_url: str,
                 settings: tuple[tuple[str, str], ...] = ()) -> dict:
    """The daemon's pipeline in this process, flat out over the clip; its own stage clock.

    `settings`: (key, value) pairs set as `--set` would (the side-by-side detector comparison)."""
    overrides = [("face.model", str(model), "--model"), ("source.uri", str(clip), "--source"),
                 ("mqtt.url", broker_url, "--broker"), ("device.num_threads", "1", "--set"),
                 ("device.id", "bench", "--set"), ("mqtt.stats_every_s", "1", "--set")]
    overrides += [(key, value, "--set") for key, value in settings]
    app = App.build(load_config(None, env={}, overrides=overrides))
    app.start()
    try:
        result = app.run()
    finally:
        app.close()
    return result.summary


def naive_run(clip: Path, max_frames: int) -> float:
    """Frames per second of the per-frame full-resolution Haar + Keras predict loop."""
    import keras

    if Path(KERAS_FACE_MODEL).is_file():
        model = keras.models.load_model(KERAS_FACE_MODEL)
    else:
        from training.architectures import mini_xception

        model = mini_xception()
    model.predict(np.zeros((1, FACE_SIZE, FACE_SIZE, 1), np.float32), verbose=0)  # build once, untimed
    cascade = cv2.CascadeClassifier(str(default_cascade_path()))
    capture = cv2.VideoCapture(str(clip))
    done = 0
    started = time.perf_counter()
    while done < max_frames:
        ok, image = capture.read()
        if not ok:
            break
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        for x, y, w, h in cascade.detectMultiScale(grey, scaleFactor=1.3, minNeighbors=5):
            face = cv2.resize(grey[y:y + h, x:x + w], (FACE_SIZE, FACE_SIZE)).astype(np.float32)
            model.predict(face[None, :, :, None], verbose=0).argmax()
        done += 1
    capture.release()
    return done / (time.perf_counter() - started)


def daemon_peak_rss_mb(clip: Path, model: Path, broker_url: str) -> float:
    """Run `python -m device` on the clip and read the peak RSS it reports for itself."""
    command = [sys.executable, "-m", "device", "--source", str(clip), "--model", str(model),
               "--set", "device.num_threads=1", "--events-out", os.devnull, "--device-id", "bench-rss"]
    command += ["--broker", broker_url] if broker_url else ["--no-mqtt"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    found = re.search(r"peak RSS (\d+) MB", result.stderr)
    if result.returncode != 0 or found is None:
        raise RuntimeError(f"daemon run for RSS failed: {result.stderr[-500:]}")
    return float(found.group(1))


def gate_pair(clip: Path, model: Path, broker_url: str, rounds: int = 2) -> dict:
    """The 1-face pipeline with the face gate off and on, alternated `rounds` times in this process so
    both see the same load; mean fps and stage times of each. The gate only scores detections that
    would start a track, so its cost lands in the `track` stage."""
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    for _ in range(rounds):
        for state, summaries in runs.items():
            enabled = "true" if state == "on" else "false"
            summaries.append(pipeline_run(clip, model, broker_url, (("gate.enabled", enabled),)))
    out = {}
    for state, summaries in runs.items():
        out[f"pipeline_fps_1face_gate_{state}"] = float(np.mean([r["fps"] for r in summaries]))
        out[f"stage_ms_1face_gate_{state}"] = {
            stage: float(np.mean([r["stage_ms"][stage] for r in summaries])) for stage in STAGES}
    return out


def print_table(results: dict, model_name: str, broker: str) -> None:
    rows = [("pipeline, 1 face", results["pipeline_fps_1face"], results["stage_ms_1face"]),
            ("pipeline, 3 faces", results["pipeline_fps_3faces"], results["stage_ms_3faces"])]
    rows += [(f"1 face, gate {state}", results[f"pipeline_fps_1face_gate_{state}"],
              results[f"stage_ms_1face_gate_{state}"]) for state in ("off", "on")
             if f"pipeline_fps_1face_gate_{state}" in results]
    print(f"model: {model_name}; 640x480 MJPEG clips, 1 thread; publish to {broker}")
    print(f"{'loop':<20} {'fps':>7}  " + " ".join(f"{s:>10}" for s in STAGES) + "   (ms per frame)")
    for name, fps, stages in rows:
        print(f"{name:<20} {fps:>7.1f}  " + " ".join(f"{stages[s]:>10.3f}" for s in STAGES))
    print(f"{'naive, 1 face':<20} {results['naive_fps_1face']:>7.1f}  (full-res Haar 1.3 + Keras predict "
          "per face, every frame)")
    print(f"speedup vs naive: {results['speedup_vs_naive']:.1f}x; daemon peak RSS {results['rss_mb']:.0f} MB")


def run_pipeline_bench(frame_count: int = 300, naive_frames: int = 60) -> dict:
    """Print the table; return the figures for `make bench`'s JSON line."""
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:
        workdir = Path(tmp)
        one = write_video(workdir / "one_face.avi", frames(frame_count, guest=None), fps=30)
        three = write_video(workdir / "three_faces.avi", frames(frame_count, guest=None, extra_faces=2),
                            fps=30)
        model, model_name = bench_model(workdir)
        broker = MosquittoBroker(workdir / "broker").start() if mosquitto_binary() else None
        url = broker.url if broker else ""
        try:
            one_face = pipeline_run(one, model, url)
            gated = gate_pair(one, model, url) if Path(GateSection().model).is_file() else {}
            three_faces = pipeline_run(three, model, url)
            rss = daemon_peak_rss_mb(one, model, url)
        finally:
            if broker is not None:
                broker.stop()
        naive = naive_run(one, naive_frames)
    results = {
        "pipeline_fps_1face": one_face["fps"], "pipeline_fps_3faces": three_faces["fps"],
        "stage_ms_1face": one_face["stage_ms"], "stage_ms_3faces": three_faces["stage_ms"],
        "faces_per_frame_1face": one_face["faces_per_frame"],
        "faces_per_frame_3faces": three_faces["faces_per_frame"],
        "naive_fps_1face": round(naive, 2), "speedup_vs_naive": round(one_face["fps"] / naive, 1),
        "rss_mb": rss, "pipeline_bench_model": model_name, **gated,
    }
    print_table(results, model_name, "mosquitto on loopback" if url else "nowhere (no mosquitto)")
    return results
