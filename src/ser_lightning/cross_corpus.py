"""Test a trained checkpoint on another corpus (or another copy of the same corpus).

The target corpus's labels are mapped onto the model's classes through the shared
emotion vocabulary (:mod:`ser_lightning.labels`): a label the model knows is kept; a
label it does not know (RAVDESS ``calm`` or EmoDB ``boredom`` for a TESS model) is
either mapped through ``label_map`` (default ``calm -> neutral``, the usual merge of
RAVDESS's calm into neutral), dropped, or makes the evaluation stop, by the
``unknown_labels`` policy. Every such label is reported with its file count, and so
are the model's classes that the target data lacks (they can still be predicted, and
such predictions count as errors).

Each file is scored as in ``predict.py``: clips of the model's length, half
overlapping, probabilities averaged over the file (a file no longer than a clip is one
centred clip, as in training's test step).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ser_lightning.class_report import macro_f1, per_class_metrics, war_uar
from ser_lightning.data.corpora import Utterance, read_corpus

log = logging.getLogger(__name__)

UNKNOWN_LABEL_POLICIES = ("map", "drop", "error")


class UnmappableLabelError(ValueError):
    """``unknown_labels=error`` and the target data has labels the model does not know."""


@dataclass
class LabelMapping:
    """How the target corpus's labels meet the model's classes.

    Attributes:
        mapping: target label -> model class, for every label that is evaluated.
        dropped: target label -> number of files left out (no model class for it).
        mapped: target label -> model class, for labels changed through ``label_map``.
        absent: model classes with no file in the target data.
    """

    mapping: dict[str, str]
    dropped: dict[str, int] = field(default_factory=dict)
    mapped: dict[str, str] = field(default_factory=dict)
    absent: list[str] = field(default_factory=list)

    def describe(self) -> list[str]:
        """Human-readable lines for the log and the printed report."""
        lines = [f"mapped {src} -> {dst}" for src, dst in self.mapped.items()]
        lines += [f"dropped {label}: {n} files (the model has no such class)" for label, n in self.dropped.items()]
        if self.absent:
            lines.append(f"model classes absent from the target data: {', '.join(self.absent)}")
        return lines


def map_labels(label_counts: dict[str, int], model_classes: list[str], policy: str = "map",
               label_map: dict[str, str] | None = None) -> LabelMapping:
    """Decide, for each target label, which model class it is scored as.

    Args:
        label_counts: target label -> number of files.
        model_classes: the checkpoint's class names.
        policy: ``map`` (apply ``label_map`` to unknown labels, drop the rest), ``drop``
            (drop every unknown label) or ``error``.
        label_map: unknown target label -> model class (used by ``map``).

    Raises:
        ValueError: unknown policy, or a ``label_map`` target the model lacks.
        UnmappableLabelError: ``policy="error"`` and some labels are unknown, or no
            label at all is left to evaluate.
    """
    if policy not in UNKNOWN_LABEL_POLICIES:
        raise ValueError(f"unknown_labels='{policy}' is unknown; allowed: {list(UNKNOWN_LABEL_POLICIES)}")
    label_map = dict(label_map or {})
    known = set(model_classes)
    result = LabelMapping(mapping={})
    for label, count in label_counts.items():
        if label in known:
            result.mapping[label] = label
        elif policy == "map" and label in label_map:
            if label_map[label] not in known:
                raise ValueError(f"label_map.{label}={label_map[label]}: the model has no class '{label_map[label]}'; "
                                 f"its classes: {list(model_classes)}")
            result.mapping[label] = result.mapped[label] = label_map[label]
        else:
            result.dropped[label] = count
    if policy == "error" and result.dropped:
        raise UnmappableLabelError(f"the target data has labels the model does not know: {sorted(result.dropped)} "
                                   f"(model classes: {list(model_classes)}); use unknown_labels=drop or map")
    if not result.mapping:
        raise UnmappableLabelError(f"no target label matches the model's classes {list(model_classes)}: "
                                   f"target labels {sorted(label_counts)}")
    present = set(result.mapping.values())
    result.absent = [c for c in model_classes if c not in present]
    return result


def evaluate_rows(predictor, rows: list[Utterance], mapping: LabelMapping, cache_dir: str | None = None,
                  min_seconds: float = 0.0, batch_size: int = 32) -> dict:
    """Score ``rows`` (already filtered to mapped labels) with ``predictor``.

    A speaker-normalised model gets each speaker's statistics over all of that
    speaker's rows, as in training (labels are not used).

    Returns:
        ``{"confusion": [n_classes, n_classes] counts over the model's classes (rows
        true), "predictions": [(path, true, predicted, probability)], "skipped":
        {path: reason}}``.
    """
    from ser_lightning.data.cache import load_or_decode

    classes = predictor.class_names
    index = {c: k for k, c in enumerate(classes)}
    audio = load_or_decode([r.path for r in rows], predictor.sample_rate, cache_dir, min_seconds)
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    predictions = []
    pending: list[tuple[Utterance, np.ndarray]] = []

    speaker_stats = {}
    if predictor.speaker_normalized:  # each speaker's own statistics, as in training
        for speaker in sorted({r.speaker for r in rows}):
            waves = [audio.wave(i) for i, r in enumerate(rows) if r.speaker == speaker and r.path not in audio.errors]
            if waves:
                speaker_stats[speaker] = predictor.statistics(waves)

    def flush():
        windows = np.concatenate([w for _, w in pending])
        stats = None
        if predictor.speaker_normalized:
            per_window = [speaker_stats[row.speaker] for row, w in pending for _ in range(len(w))]
            stats = (torch.stack([m for m, _ in per_window]), torch.stack([s for _, s in per_window]))
        probs = predictor.probabilities(windows, stats)
        start = 0
        for row, w in pending:
            p = probs[start:start + len(w)].mean(axis=0)
            start += len(w)
            true, pred = index[mapping.mapping[row.label]], int(np.argmax(p))
            confusion[true, pred] += 1
            predictions.append((row.path, classes[true], classes[pred], float(p[pred])))
        pending.clear()

    for i, row in enumerate(rows):
        if row.path in audio.errors:
            continue
        pending.append((row, predictor.windows(audio.wave(i))))
        if sum(len(w) for _, w in pending) >= batch_size:
            flush()
    if pending:
        flush()
    return {"confusion": confusion, "predictions": predictions, "skipped": dict(audio.errors)}


def select_rows(data_cfg: dict, part: str) -> list[Utterance]:
    """The target corpus's files: all of them (``part=all``) or one part of the split
    its data config describes (``train``/``val``/``test``), after the gender filter.

    Raises:
        ValueError: unknown part or gender.
        CorpusNotFoundError, UnknownLabelError: from the reader.
    """
    from ser_lightning.data.splits import make_split

    if part not in ("all", "train", "val", "test"):
        raise ValueError(f"part='{part}' is unknown; allowed: all, train, val, test")
    rows = read_corpus(data_cfg["corpus"], data_cfg["root"])
    gender = data_cfg.get("gender")
    if gender not in (None, "female", "male"):
        raise ValueError(f"data.gender='{gender}' is unknown; allowed: female, male, null")
    if gender:
        rows = [r for r in rows if r.gender == gender]
    if part == "all":
        return rows
    split = make_split(rows, protocol=data_cfg.get("split", "auto"), val_fraction=data_cfg.get("val_fraction", 0.15),
                       test_fraction=data_cfg.get("test_fraction", 0.15), seed=data_cfg.get("seed", 0),
                       fold=data_cfg.get("fold", 0), num_folds=data_cfg.get("num_folds", 5))
    return getattr(split, part)


def _checkpoint_name(ckpt_path) -> str:
    """A short name for a plot title: the file name, or the ensemble's size."""
    return f"ensemble of {len(ckpt_path)} checkpoints" if isinstance(ckpt_path, list) else Path(str(ckpt_path)).name


def evaluate_checkpoint(ckpt_path: str | Path | list[str | Path], data_cfg: dict, part: str = "all", unknown_labels: str = "map",
                        label_map: dict[str, str] | None = None, batch_size: int = 32, device: str | None = None,
                        output_dir: str | Path | None = None) -> dict:
    """Evaluate a checkpoint (or a list of them, an ensemble, see
    :meth:`~ser_lightning.inference.Predictor.from_checkpoint`) on the corpus of
    ``data_cfg`` (a resolved ``conf/data``).

    Writes into ``output_dir`` (when given): ``metrics.json``, ``per_class_metrics.csv``,
    ``predictions.csv`` and ``confusion_matrix.png``.

    Returns:
        The report: ``eval/war``, ``eval/uar``, ``eval/f1_macro`` (fractions; UAR and
        F1 over the classes present in the mapped target data), file counts, the label
        mapping (``mapped``, ``dropped``, ``absent``), per-class scores and the
        confusion matrix.

    Raises:
        CheckpointError: not a loadable ser-lightning checkpoint.
        CorpusNotFoundError, UnknownLabelError, UnmappableLabelError, ValueError: see
            :func:`select_rows` and :func:`map_labels`.
    """
    import csv
    import json

    from ser_lightning.inference import Predictor

    predictor = Predictor.from_checkpoint(ckpt_path, device=device)
    rows = select_rows(data_cfg, part)
    mapping = map_labels(Counter(r.label for r in rows), predictor.class_names, unknown_labels, label_map)
    for line in mapping.describe():
        log.info("labels: %s", line)
    kept = [r for r in rows if r.label in mapping.mapping]
    result = evaluate_rows(predictor, kept, mapping, data_cfg.get("cache_dir"), data_cfg.get("min_seconds", 0.0), batch_size)
    confusion = result["confusion"]
    war, uar = war_uar(confusion)
    per_class = per_class_metrics(confusion, predictor.class_names)
    report = {
        "eval/war": war, "eval/uar": uar, "eval/f1_macro": macro_f1(per_class),
        "checkpoint": [str(p) for p in ckpt_path] if isinstance(ckpt_path, list) else str(ckpt_path), "corpus": data_cfg["corpus"], "root": str(data_cfg["root"]), "part": part,
        "model_classes": predictor.class_names, "unknown_labels": unknown_labels,
        "mapped": mapping.mapped, "dropped": mapping.dropped, "absent": mapping.absent,
        "n_files": len(rows), "n_evaluated": int(confusion.sum()), "n_dropped": sum(mapping.dropped.values()),
        "skipped_files": result["skipped"], "per_class": per_class, "confusion_matrix": confusion.tolist(),
    }
    if output_dir is not None:
        from ser_lightning.class_report import write_per_class_csv
        from ser_lightning.plots import plot_confusion_matrix

        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(report, indent=2))
        write_per_class_csv(per_class, out / "per_class_metrics.csv")
        with (out / "predictions.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "true", "predicted", "probability"])
            writer.writerows(result["predictions"])
        plot_confusion_matrix(confusion, predictor.class_names, out / "confusion_matrix.png",
                              title=f"{_checkpoint_name(ckpt_path)} on {data_cfg['corpus']} ({part})")
    return report
