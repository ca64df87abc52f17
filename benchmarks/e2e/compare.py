"""Two `make e2e` results face by face: does a change give the user more right answers, or luck?

    python -m benchmarks.e2e --set face.model=runs/cand/x_int8.tflite   # writes runs/e2e/last_result.json
    cp runs/e2e/last_result.json runs/e2e_x.json
    python -m benchmarks.e2e.compare runs/e2e_shipped.json runs/e2e_x.json

531 faces move an accuracy by a point or two by chance alone, and both runs see the same faces, so
the comparison is paired: on the faces both runs detected, how many the second got right that the
first got wrong ("won") and the reverse ("lost"), and the exact McNemar test on those (two-sided
binomial on won against lost; the faces both got right or both wrong say nothing about the
difference). Also the same count for the model on the clean crops, which moves when the model does.
One JSON line last.
"""

from __future__ import annotations

import argparse
import json
import sys
from math import comb
from pathlib import Path


def mcnemar_p(won: int, lost: int) -> float:
    """Exact two-sided McNemar p-value: the chance of a split at least this uneven between `won`
    and `lost` if each discordant face were a fair coin."""
    n = won + lost
    if n == 0:
        return 1.0
    tail = sum(comb(n, k) for k in range(min(won, lost) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def face_key(row: dict) -> tuple[int, int]:
    return row["segment"], row["face"]


def paired(before: list[dict], after: list[dict], right: str) -> dict:
    """Counts over the faces both runs detected, for the per-face boolean `right`."""
    first = {face_key(r): r for r in before if r["detected"]}
    second = {face_key(r): r for r in after if r["detected"]}
    both = sorted(first.keys() & second.keys())
    won = sum(1 for k in both if second[k][right] and not first[k][right])
    lost = sum(1 for k in both if first[k][right] and not second[k][right])
    faces = len(both)
    return {"faces": faces, "before": sum(first[k][right] for k in both) / faces if faces else 0.0,
            "after": sum(second[k][right] for k in both) / faces if faces else 0.0,
            "won": won, "lost": lost, "p": mcnemar_p(won, lost)}


class ResultError(ValueError):
    """A result file that is missing or not `make e2e`'s."""


def load_rows(path: Path) -> list[dict]:
    try:
        rows = json.loads(path.read_text())["rows"]
    except FileNotFoundError:
        raise ResultError(f"{path}: no such file; run `python -m benchmarks.e2e` and copy its "
                          "runs/e2e/last_result.json") from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ResultError(f"{path}: not a `make e2e` result (no per-face rows)") from None
    if not rows or not {"segment", "face", "detected", "right", "model_right"} <= rows[0].keys():
        raise ResultError(f"{path}: not a `make e2e` result (no per-face rows)")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="result JSON of the reference run")
    parser.add_argument("after", type=Path, help="result JSON of the changed run")
    args = parser.parse_args(argv)
    try:
        before, after = load_rows(args.before), load_rows(args.after)
    except ResultError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = {}
    for name, key in (("daemon", "right"), ("model", "model_right")):
        row = paired(before, after, key)
        summary[name] = row
        print(f"{name:>6}: {row['before']:.1%} -> {row['after']:.1%} on the {row['faces']} faces both "
              f"detected; {row['won']} won, {row['lost']} lost, McNemar p = {row['p']:.3f}")
    print(json.dumps({"before": str(args.before), "after": str(args.after), **summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
