"""Scores derived from a confusion matrix: per-class precision/recall/F1, WAR and UAR.

Rows of a confusion matrix are true classes, columns predicted classes (the
torchmetrics and scikit-learn convention). UAR is the unweighted mean of the per-class
recalls (Schuller et al., 2009), WAR the accuracy.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def per_class_metrics(confusion, class_names: list[str]) -> list[dict]:
    """One row per class: ``class``, ``precision``, ``recall``, ``f1`` (fractions in
    [0, 1]), ``support`` (true examples) and ``predicted`` (examples predicted as it).

    A ratio with a zero denominator (a class never predicted, or with no true example)
    is ``0.0`` for precision/F1 and ``None`` for recall without support, so an absent
    class is not mistaken for a class the model always misses.

    Args:
        confusion: ``[n_classes, n_classes]`` counts, rows true, columns predicted.
        class_names: ``n_classes`` names in index order.

    Raises:
        ValueError: the matrix is not square or does not match ``class_names``.
    """
    cm = np.asarray(confusion, dtype=float)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(class_names):
        raise ValueError(f"confusion matrix of shape {cm.shape} does not fit {len(class_names)} classes")
    rows = []
    for k, name in enumerate(class_names):
        tp, support, predicted = cm[k, k], cm[k].sum(), cm[:, k].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else None
        f1 = 2 * precision * recall / (precision + recall) if recall and precision + recall > 0 else 0.0
        rows.append({"class": name, "precision": float(precision), "recall": None if recall is None else float(recall),
                     "f1": float(f1), "support": int(support), "predicted": int(predicted)})
    return rows


def macro_f1(per_class: list[dict]) -> float:
    """Mean F1 over the classes of :func:`per_class_metrics` rows that have true
    examples (as UAR, a class absent from the data does not count)."""
    return float(np.mean([r["f1"] for r in per_class if r["support"] > 0]))


def war_uar(confusion) -> tuple[float, float]:
    """``(WAR, UAR)`` of a confusion matrix; UAR averages the recall of the classes
    that have true examples.

    Raises:
        ValueError: the matrix holds no example.
    """
    cm = np.asarray(confusion, dtype=float)
    support = cm.sum(axis=1)
    if support.sum() == 0:
        raise ValueError("empty confusion matrix")
    present = support > 0
    return float(np.trace(cm) / support.sum()), float(np.mean(np.diag(cm)[present] / support[present]))


def write_per_class_csv(rows: list[dict], path: str | Path) -> None:
    """Write :func:`per_class_metrics` rows as CSV (empty cell for an undefined recall)."""
    with Path(path).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["class", "precision", "recall", "f1", "support", "predicted"])
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
