"""`python -m review.timeline events.jsonl -o timeline.png`: an emotion timeline of a recording.

Per track, the dominant emotion over time as coloured bands with the seven probabilities stacked
beneath; valence and arousal of every track as lines; the voice reading on its own row. Events are
what the daemon published (appear, change, heartbeat, end), so a band lasts from one event of the
track to its next: exactly what a subscriber knew at each moment.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

FACE_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
VOICE_TO_FACE = {"neutral": "neutral", "calm": "neutral", "happy": "happy", "sad": "sad", "angry": "angry",
                 "fearful": "fear", "disgust": "disgust", "surprised": "surprise"}
# The dashboard's and the annotated video's hues (RGB here).
COLOURS = {"angry": "#dc2828", "disgust": "#788c14", "fear": "#9646aa", "happy": "#f0be1e",
           "sad": "#1e6eb4", "surprise": "#fa8214", "neutral": "#a0a0a0"}


@dataclass
class TrackHistory:
    times: list[float] = field(default_factory=list)
    emotions: list[str] = field(default_factory=list)
    probabilities: list[list[float]] = field(default_factory=list)
    valence: list[float] = field(default_factory=list)
    arousal: list[float] = field(default_factory=list)


@dataclass
class Timeline:
    tracks: dict[int, TrackHistory]
    voice: list[tuple[float, str, float]]  # (time, voice emotion or "silent", confidence)
    end_s: float


def read_timeline(lines: list[str]) -> Timeline:
    """Events of one run (the last boot in the file: a file is appended to across restarts)."""
    events = [json.loads(line) for line in lines if line.strip()]
    events = [e for e in events if e.get("kind") == "event"]
    if not events:
        raise ValueError("no events in the file: is it the daemon's --events-out output?")
    boot = events[-1]["boot_id"]
    tracks: dict[int, TrackHistory] = defaultdict(TrackHistory)
    voice: list[tuple[float, str, float]] = []
    for event in (e for e in events if e["boot_id"] == boot):
        t = float(event["frame"]["media_time_s"])
        history = tracks[event["track_id"]]
        history.times.append(t)
        history.emotions.append(event["emotion"])
        history.probabilities.append([event["probabilities"][label] for label in FACE_LABELS])
        history.valence.append(event["valence"])
        history.arousal.append(event["arousal"])
        heard = event.get("voice")
        if heard is not None:
            voice.append((t, heard.get("emotion", "silent"), heard.get("confidence", 0.0)))
    end = max(t for h in tracks.values() for t in h.times)
    return Timeline(dict(sorted(tracks.items())), sorted(set(voice)), end)


def plot(timeline: Timeline, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rows = 2 * len(timeline.tracks) + 2
    ratios = [1, 2] * len(timeline.tracks) + [2, 1]
    fig, axes = plt.subplots(rows, 1, figsize=(11, 1.0 + 0.75 * sum(ratios)), sharex=True,
                             gridspec_kw={"height_ratios": ratios})
    span = max(timeline.end_s, 1e-3)
    for i, (track_id, history) in enumerate(timeline.tracks.items()):
        band, stack = axes[2 * i], axes[2 * i + 1]
        edges = [*history.times[1:], history.times[-1]]
        for start, stop, emotion in zip(history.times, edges, history.emotions, strict=True):
            band.axvspan(start, max(stop, start + span / 400), color=COLOURS[emotion], linewidth=0)
        band.set_yticks([])
        band.set_ylabel(f"track {track_id}", rotation=0, ha="right", va="center")
        columns = list(zip(*history.probabilities, strict=True))
        stack.stackplot(history.times, columns, step="post", colors=[COLOURS[label] for label in FACE_LABELS])
        stack.set_ylim(0, 1)
        stack.set_ylabel("p", rotation=0, ha="right", va="center")
    affect = axes[-2]
    for n, (track_id, history) in enumerate(timeline.tracks.items()):
        colour = f"C{n % 10}"  # one colour per track: valence solid, arousal dashed
        affect.step(history.times, history.valence, where="post", color=colour,
                    label=f"valence, track {track_id}")
        affect.step(history.times, history.arousal, where="post", color=colour, linestyle="--",
                    label=f"arousal, track {track_id}")
    affect.axhline(0, color="#888", linewidth=0.5)
    affect.set_ylim(-1, 1)
    affect.legend(loc="upper left", fontsize=7, ncol=2)
    heard = axes[-1]
    stops = [t for t, _, _ in timeline.voice[1:]] + [timeline.end_s] * bool(timeline.voice)
    for (start, emotion, _), stop in zip(timeline.voice, stops, strict=True):
        colour = COLOURS[VOICE_TO_FACE[emotion]] if emotion in VOICE_TO_FACE else "#ffffff"
        heard.axvspan(start, stop, color=colour, linewidth=0)
    heard.set_yticks([])
    heard.set_ylabel("voice", rotation=0, ha="right", va="center")
    if not timeline.voice:
        heard.text(0.5, 0.5, "no voice in these events (audio off)", ha="center", va="center",
                   transform=heard.transAxes, fontsize=8, color="#666")
    heard.set_xlabel("seconds into the recording")
    heard.set_xlim(0, span)
    fig.legend(handles=[Patch(color=COLOURS[label], label=label) for label in FACE_LABELS],
               loc="upper center", bbox_to_anchor=(0.5, 0.965), ncol=7, fontsize=8, frameon=False)
    fig.suptitle(title, y=0.995, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m review.timeline", description=__doc__.splitlines()[0])
    parser.add_argument("events", help="the daemon's JSON-lines events (--events-out)")
    parser.add_argument("-o", "--out", default="timeline.png", help="PNG to write")
    args = parser.parse_args(argv)
    try:
        lines = Path(args.events).read_text(encoding="utf-8").splitlines()
        timeline = read_timeline(lines)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        print(f"timeline: {args.events}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 2
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("timeline: needs matplotlib (pip install matplotlib, or the project's `train` extra)",
              file=sys.stderr)
        return 2
    plot(timeline, Path(args.out), f"{Path(args.events).name}: {len(timeline.tracks)} track(s), "
         f"{timeline.end_s:.1f} s")
    print(f"timeline: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
