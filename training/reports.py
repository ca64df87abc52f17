"""Report files a person looks at after a run: curves, confusion matrix, per-class table."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def plot_curves(history: dict[str, list[float]], path: Path) -> None:
    """Loss and accuracy per epoch, training beside validation."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(prefix + metric)
            if values:
                ax.plot(range(1, len(values) + 1), values, style,
                        label="validation" if prefix else "training")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(report: dict, path: Path, title: str) -> None:
    """Row-normalised confusion matrix with counts, so small classes are readable."""
    matrix = np.asarray(report["confusion_matrix"], dtype=np.float64)
    labels = report["labels"]
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.0 * len(labels) + 2, 1.0 * len(labels) + 1.5))
    ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            colour = "white" if normalised[i, j] > 0.5 else "black"
            ax.text(j, i, f"{normalised[i, j]:.2f}\n({int(matrix[i, j])})", ha="center",
                    va="center", fontsize=7, color=colour)
    ax.set_title(f"{title}\naccuracy {report['accuracy']:.1%}, n={report['n']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report_markdown(report: dict, title: str) -> str:
    lines = [
        f"# {title}", "",
        f"- samples: {report['n']}",
        f"- accuracy: {report['accuracy']:.4f}",
        f"- macro-F1: {report['macro_f1']:.4f}",
        f"- unweighted average recall: {report['uar']:.4f}",
        f"- top-3 accuracy: {report['top3']:.4f}", "",
        "| class | precision | recall | F1 | support |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, row in report["per_class"].items():
        lines.append(f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | "
                     f"{row['f1']:.3f} | {row['support']} |")
    return "\n".join(lines) + "\n"


def write_reports(out_dir: Path, history: dict, report: dict, title: str,
                  extra: dict | None = None) -> None:
    """Write history.json, curves.png, confusion_matrix.png, report.json and report.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "history.json").write_text(json.dumps(history, indent=1))
    plot_curves(history, out_dir / "curves.png")
    plot_confusion(report, out_dir / "confusion_matrix.png", title)
    (out_dir / "report.json").write_text(json.dumps({**report, **(extra or {})}, indent=1))
    md = report_markdown(report, title)
    for key, value in (extra or {}).items():
        md += f"\n- {key}: {json.dumps(value)}"
    (out_dir / "report.md").write_text(md + "\n" + saliency_section(out_dir))


SALIENCY_HEADING = "## Saliency"


def saliency_section(run_dir: Path) -> str:
    """Links to `run_dir/saliency/` (written by `python -m training.saliency --out RUN/saliency`)."""
    index = run_dir / "saliency" / "saliency.md"
    if not index.is_file():
        return ""
    grids = sorted(p.name for p in index.parent.glob("*.png") if p.name != "summary.png")
    links = ", ".join(f"[{Path(name).stem}](saliency/{name})" for name in grids)
    return (f"\n{SALIENCY_HEADING}\n\n- [index and region shares](saliency/saliency.md), "
            f"[average maps](saliency/summary.png)\n- per-class grids: {links}\n")


def link_saliency(saliency_dir: Path) -> None:
    """Add (or refresh) the saliency links in the report.md of the run folder above `saliency_dir`."""
    report = saliency_dir.parent / "report.md"
    if saliency_dir.name != "saliency" or not report.is_file():
        return
    text = report.read_text().split("\n" + SALIENCY_HEADING + "\n")[0].rstrip("\n") + "\n"
    report.write_text(text + saliency_section(saliency_dir.parent))
