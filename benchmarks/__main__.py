"""`python -m benchmarks` (`make bench`): every figure in one run, side by side, last line one JSON
object holding all of them. Benchmarks print; they never pass or fail on a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchmarks.model_bench import run_model_bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--shared", type=Path, default=Path("../shared/datasets"),
                        help="datasets folder; accuracy figures are skipped when absent")
    parser.add_argument("--skip-pipeline", action="store_true", help="models only")
    args = parser.parse_args(argv)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    figures: dict = {"machine": machine}
    print("== models (single-thread invoke) ==")
    figures["models"] = run_model_bench(args.models, args.shared)
    if not args.skip_pipeline:
        from benchmarks.pipeline_bench import run_pipeline_bench
        from benchmarks.voice_bench import run_voice_bench

        print("== pipeline ==")
        figures.update(run_pipeline_bench())
        print("== voice ==")
        figures.update(run_voice_bench(args.shared, args.models))
        from benchmarks.e2e.run import run_e2e

        print("== end to end (FER2013 PublicTest clip) ==")
        figures.update(run_e2e(args.shared))
        from benchmarks.e2e.utterance_stream import held_out_config, run_utterances
        from benchmarks.e2e.voice_clip import VoiceClipSpec

        print("== utterances (RAVDESS actors 17-20 stream, make e2e-voice's) ==")
        config = held_out_config([])
        figures.update(run_utterances(args.shared, Path("runs/e2e_voice"), VoiceClipSpec(), ["clean"],
                                      [1.0, config.audio.utterance_alpha], 10, config))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
