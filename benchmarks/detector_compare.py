"""Face detectors (or any setting's values) side by side in the daemon's pipeline: `make bench`'s
clips, rounds interleaved.

    python -m benchmarks.detector_compare                       # detector.kind haar vs blazeface
    python -m benchmarks.detector_compare --rounds 7 --set detector.every_n_frames=4
    python -m benchmarks.detector_compare --vary face.inner_view=0,0.87
    python -m benchmarks.detector_compare --vary face.inner_view=0,0.87 --vary face.every_n_frames=1,2

On a shared machine the load changes from minute to minute, so one run per setting says little:
each round runs every value once on the same clip, one after the other, and the table gives per
value the median over rounds of the wall-clock frame rate (the pipeline's own, as `make bench`
reports it) and of frames per CPU-second (this process's CPU time over the frame loop: the
pipeline runs on one thread, so that figure depends far less on what else the machine is doing),
and the mean detect and infer stages per frame. Several `--vary` go together: their first values
make one run, their second values the next, so old and new defaults of several settings compare.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.pipeline_bench import bench_model
from demo.clip import frames, write_video
from demo.local_broker import MosquittoBroker, mosquitto_binary
from device.app import App
from device.config import load_config

DEFAULT_VARY = "detector.kind=haar,blazeface"


def timed_run(clip: Path, model: Path, broker_url: str, settings: tuple) -> tuple[dict, float]:
    """`pipeline_bench.pipeline_run`, plus this process's CPU seconds over the frame loop alone
    (building the app loads the models; that is start-up, not frame rate)."""
    overrides = [("face.model", str(model), "--model"), ("source.uri", str(clip), "--source"),
                 ("mqtt.url", broker_url, "--broker"), ("device.num_threads", "1", "--set"),
                 ("device.id", "bench", "--set"), ("mqtt.stats_every_s", "1", "--set")]
    app = App.build(load_config(None, env={}, overrides=overrides + [(k, v, "--set") for k, v in settings]))
    app.start()
    try:
        started = time.process_time()
        result = app.run()
        cpu = time.process_time() - started
    finally:
        app.close()
    return result.summary, cpu


def compare(rounds: int, frame_count: int, settings: list[tuple[str, str]], faces: int,
            variants: dict[str, tuple[tuple[str, str], ...]]) -> dict:
    """Per variant (its label: the settings it changes), one row per round: wall fps, frames per
    CPU-second, detect and infer ms per frame."""
    cv2.setNumThreads(1)
    results: dict[str, list[tuple[float, float, float, float]]] = {label: [] for label in variants}
    with tempfile.TemporaryDirectory(prefix="detector-compare-") as tmp:
        workdir = Path(tmp)
        clip = write_video(workdir / "clip.avi", frames(frame_count, guest=None, extra_faces=faces - 1),
                           fps=30)
        model, _ = bench_model(workdir)
        broker = MosquittoBroker(workdir / "broker").start() if mosquitto_binary() else None
        try:
            for _ in range(rounds):
                for label, changed in variants.items():
                    summary, cpu = timed_run(clip, model, broker.url if broker else "", (*changed, *settings))
                    results[label].append((summary["fps"], summary["frames"] / cpu,
                                           summary["stage_ms"]["detect"], summary["stage_ms"]["infer"]))
        finally:
            if broker is not None:
                broker.stop()
    return {label: np.array(rows) for label, rows in results.items()}


def variants_of(varied: list[str]) -> dict[str, tuple[tuple[str, str], ...]] | None:
    """`KEY=V1,V2,...` per varied setting, zipped into runs labelled "V1/W1", ...; None if malformed."""
    keys, columns = [], []
    for item in varied:
        key, _, listed = item.partition("=")
        values = [value for value in listed.split(",") if value]
        if not key or len(values) < 2 or (columns and len(values) != len(columns[0])):
            return None
        keys.append(key)
        columns.append(values)
    return {"/".join(row): tuple(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--faces", type=int, default=1, choices=(1, 3))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting shared by every run")
    parser.add_argument("--vary", action="append", metavar="KEY=V1,V2[,...]",
                        help=f"a setting compared and its values (default {DEFAULT_VARY}); repeated, "
                             "the n-th values of each go together")
    args = parser.parse_args(argv)
    settings = [tuple(item.split("=", 1)) for item in args.set]
    varied = args.vary or [DEFAULT_VARY]
    variants = variants_of(varied)
    if variants is None:
        print(f"error: --vary {' '.join(varied)!r}: give a setting and two or more values (as many for "
              f"each --vary), e.g. {DEFAULT_VARY}", file=sys.stderr)
        return 2
    results = compare(args.rounds, args.frames, settings, args.faces, variants)
    print(f"{args.faces}-face demo clip, {args.frames} frames 640x480, 1 thread, {args.rounds} rounds "
          "interleaved" + (f"; {' '.join(args.set)}" if args.set else ""))
    key = "/".join(item.partition("=")[0] for item in varied)
    print(f"{key:<22} {'fps median':>11} {'min':>7} {'max':>7} {'frames/CPU-s':>13} "
          f"{'detect ms/frame':>16} {'infer ms/frame':>15}")
    for label, rows in results.items():
        print(f"{label:<22} {np.median(rows[:, 0]):>11.1f} {rows[:, 0].min():>7.1f} {rows[:, 0].max():>7.1f} "
              f"{np.median(rows[:, 1]):>13.1f} {rows[:, 2].mean():>16.3f} {rows[:, 3].mean():>15.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
