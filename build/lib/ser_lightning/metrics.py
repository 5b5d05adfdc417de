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
    examples (as UAR, a class absent from the data does not count).

    Raises:
        ValueError: no class has a true example.
    """
    f1 = [r["f1"] for r in per_class if r["support"] > 0]
    if not f1:
        raise ValueError("macro-F1 of a confusion matrix with no true example")
    return float(np.mean(f1))


def war_uar_many(confusions) -> tuple[np.ndarray, np.ndarray]:
    """WAR and UAR of a stack of confusion matrices, the definition of :func:`war_uar`
    applied to each (vectorised for the bootstrap, :mod:`ser_lightning.evaluation.bootstrap`).

    Args:
        confusions: ``[n, n_classes, n_classes]`` counts, rows true, columns predicted.

    Returns:
        ``(war, uar)``, each of shape ``[n]``.

    Raises:
        ValueError: not a stack of square matrices, or one of them holds no example.
    """
    cm = np.asarray(confusions, dtype=float)
    if cm.ndim != 3 or cm.shape[1] != cm.shape[2]:
        raise ValueError(f"expected [n, n_classes, n_classes] confusion matrices, got shape {cm.shape}")
    support = cm.sum(axis=2)  # [n, n_classes] true examples per class
    total = support.sum(axis=1)
    if (total == 0).any():
        raise ValueError("empty confusion matrix")
    diag = np.diagonal(cm, axis1=1, axis2=2)
    present = support > 0
    recall = np.divide(diag, support, out=np.zeros_like(diag), where=present)
    return diag.sum(axis=1) / total, recall.sum(axis=1) / present.sum(axis=1)


def war_uar(confusion) -> tuple[float, float]:
    """``(WAR, UAR)`` of a confusion matrix; UAR averages the recall of the classes
    that have true examples (the one definition used by training, evaluation, ensembles
    and the results tables).

    Raises:
        ValueError: the matrix is not square or holds no example.
    """
    cm = np.asarray(confusion, dtype=float)
    if cm.ndim != 2:
        raise ValueError(f"expected a [n_classes, n_classes] confusion matrix, got shape {cm.shape}")
    war, uar = war_uar_many(cm[None])
    return float(war[0]), float(uar[0])


def confusion_scores(confusion) -> dict[str, float]:
    """``{"war", "uar", "f1_macro"}`` of a confusion matrix (fractions in [0, 1]), each
    over the classes with true examples: :func:`war_uar` and :func:`macro_f1`.

    Raises:
        ValueError: the matrix is not square or holds no example.
    """
    cm = np.asarray(confusion, dtype=float)
    war, uar = war_uar(cm)
    per_class = per_class_metrics(cm, [str(k) for k in range(cm.shape[0])])
    return {"war": war, "uar": uar, "f1_macro": macro_f1(per_class)}


def write_per_class_csv(rows: list[dict], path: str | Path) -> None:
    """Write :func:`per_class_metrics` rows as CSV (empty cell for an undefined recall)."""
    with Path(path).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["class", "precision", "recall", "f1", "support", "predicted"])
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)


def format_table(metrics: dict[str, float], title: str) -> str:
    """A short plain-text table of the test WAR, UAR and macro-F1 (in %)."""
    rows = [("WAR (accuracy)", "test/war"), ("UAR (macro recall)", "test/uar"), ("macro-F1", "test/f1_macro")]
    lines = [title, "-" * max(len(title), 32)]
    lines += [f"{name:<20} {100 * metrics[key]:6.2f} %" for name, key in rows if key in metrics]
    return "\n".join(lines)
