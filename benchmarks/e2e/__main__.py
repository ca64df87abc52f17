"""`python -m benchmarks.e2e` (`make e2e`): the daemon end to end on a labelled FER2013 PublicTest clip.

Builds (once; reused while spec and data are unchanged) a seeded clip of PublicTest faces on flat,
noisy and natural backgrounds with face-free gaps, runs the daemon's own code on it and prints one
table: detection, the daemon's accuracy against the model's own on the same faces' clean crops,
time to the first event, how long tracks outlive their faces, flicker and false tracks. Training
faces are never used. `--set key=value` runs the daemon with a setting changed (as `--set` does).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchmarks.e2e.clip_generator import ClipSpec
from benchmarks.e2e.run import run_e2e


def parse_settings(parser: argparse.ArgumentParser, items: list[str]) -> list[tuple[str, str]]:
    """`--set KEY=VALUE` items as (key, value) pairs; anything else is the parser's usage error."""
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item}: expected KEY=VALUE")
        pairs.append((key.strip(), value.strip()))
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--out", type=Path, default=Path("runs/e2e"), help="clip, timeline and results")
    parser.add_argument("--seed", type=int, default=ClipSpec.seed)
    parser.add_argument("--scenes", type=int, default=ClipSpec.scenes)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a daemon setting for this run (repeatable)")
    args = parser.parse_args(argv)
    overrides = parse_settings(parser, args.set)
    figures = run_e2e(args.shared, args.out, ClipSpec(seed=args.seed, scenes=args.scenes), overrides)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
