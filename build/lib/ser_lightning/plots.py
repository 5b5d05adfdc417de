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


def write_history_csv(rows: list[dict[str, float]], path: str | Path) -> None:
    """Write per-epoch metric rows (dicts, possibly with different keys) as CSV."""
    import csv

    keys = list(dict.fromkeys(k for r in rows for k in r))
    with Path(path).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def plot_training_curves(rows: list[dict[str, float]], path: str | Path, title: str = "") -> None:
    """Save training curves as a PNG with three panels: loss (train/val), validation
    and training scores (UAR, WAR, macro-F1, in %), and the learning rate, all per epoch.

    Args:
        rows: one dict per epoch with ``epoch`` and any of ``train/loss_epoch``,
            ``val/loss``, ``{train,val}/{uar,war,f1_macro}``, ``lr``.
    """
    epochs = [r["epoch"] + 1 for r in rows]

    def series(key):
        return [r.get(key, np.nan) for r in rows]

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for key, label in (("train/loss_epoch", "train"), ("val/loss", "val")):
        if any(key in r for r in rows):
            axes[0].plot(epochs, series(key), marker="o", label=label)
    axes[0].set_title("loss")
    for key, style in (("val/uar", "-"), ("val/war", "-"), ("val/f1_macro", "-"), ("train/uar", "--"), ("train/war", "--")):
        if any(key in r for r in rows):
            axes[1].plot(epochs, [100 * v for v in series(key)], style, marker="o", label=key)
    axes[1].set_title("scores (%)")
    if any("lr" in r for r in rows):
        axes[2].plot(epochs, series("lr"), marker="o")
    axes[2].set_title("learning rate (epoch start)")
    for ax in axes:
        ax.set_xlabel("epoch")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_timeline(prediction, class_names: list[str], path: str | Path) -> None:
    """Save the class probabilities of a long recording over time as a PNG.

    One line per class at each window's centre (seconds); silent windows are shaded
    grey and have no probabilities.

    Args:
        prediction: a :class:`ser_lightning.inference.outputs.Prediction` with its ``windows``.
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
