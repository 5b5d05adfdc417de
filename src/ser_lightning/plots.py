"""PNG plots written into the run directory (matplotlib, headless backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_confusion_matrix(confusion: np.ndarray, class_names: list[str], path: str | Path, title: str = "") -> None:
    """Save a confusion matrix ``[n_classes, n_classes]`` (rows: true, columns:
    predicted) as a PNG, each cell showing its count and its share of the row."""
    confusion = np.asarray(confusion, dtype=float)
    row_share = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * n, 0.8 + 0.7 * n))
    ax.imshow(row_share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{int(confusion[i, j])}\n{row_share[i, j]:.0%}", ha="center", va="center", fontsize=7,
                    color="white" if row_share[i, j] > 0.5 else "black")
    ax.set_title(title or "test confusion matrix (row-normalised)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_timeline(prediction, class_names: list[str], path: str | Path) -> None:
    """Save the class probabilities of a long recording over time as a PNG.

    One line per class at each window's centre (seconds); silent windows are shaded
    grey and have no probabilities.

    Args:
        prediction: a :class:`ser_lightning.inference.Prediction` with its ``windows``.
        class_names: classes in the model's order (one line each).
        path: output PNG.
    """
    windows = prediction.windows
    centres = np.array([(w.start + w.end) / 2 for w in windows])
    fig, ax = plt.subplots(figsize=(10, 3.6))
    for c in class_names:
        ax.plot(centres, [w.probabilities.get(c, np.nan) for w in windows], label=c, linewidth=1.2)
    for w in windows:
        if not w.probabilities:
            ax.axvspan(w.start, w.end, color="0.85", linewidth=0, zorder=0)
    span = max((w.end for w in windows), default=1.0)
    ax.set_xlim(0, span)
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability")
    ax.set_title(f"{Path(prediction.source).name}: emotion probabilities per window (grey: silence)", fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
