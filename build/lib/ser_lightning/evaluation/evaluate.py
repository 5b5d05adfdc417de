"""Test a trained checkpoint on another corpus (or another copy of the same corpus).

The target corpus's labels are mapped onto the model's classes through the shared
emotion vocabulary (:mod:`ser_lightning.labels`): a label the model knows is kept; a
label it does not know (RAVDESS ``calm`` or EmoDB ``boredom`` for a TESS model) is
either mapped through ``label_map`` (default ``calm -> neutral``, the usual merge of
RAVDESS's calm into neutral), dropped, or makes the evaluation stop, by the
``unknown_labels`` policy. Every such label is reported with its file count, and so
are the model's classes that the target data lacks (they can still be predicted, and
such predictions count as errors).

Each file is scored by the one scoring path (:mod:`ser_lightning.evaluation.scoring`, the same as
``predict.py`` and the test after training): ``scoring=windows`` (clips of the model's
length, half overlapping, probabilities averaged) or ``scoring=center``, under a named
test-time statistics mode for speaker-normalised models. ``part=train|val|test`` reads
the split the checkpoint was trained with from its run directory, never re-deriving it.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ser_lightning.data.corpora import Utterance, read_corpus
from ser_lightning.data.splits import Split
from ser_lightning.errors import ConfigError, UnmappableLabelError
from ser_lightning.metrics import per_class_metrics

log = logging.getLogger(__name__)

UNKNOWN_LABEL_POLICIES = ("map", "drop", "error")
#: ``eval.py classes=``: ``target`` (arg-max over the classes the evaluated data has) or ``all``.
CLASS_POLICIES = ("target", "all")


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
        raise ConfigError(f"unknown_labels='{policy}' is unknown; allowed: {list(UNKNOWN_LABEL_POLICIES)}")
    label_map = dict(label_map or {})
    known = set(model_classes)
    result = LabelMapping(mapping={})
    for label, count in label_counts.items():
        if label in known:
            result.mapping[label] = label
        elif policy == "map" and label in label_map:
            if label_map[label] not in known:
                raise ConfigError(f"label_map.{label}={label_map[label]}: the model has no class '{label_map[label]}'; "
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


def run_dir_of(ckpt_path: str | Path) -> Path:
    """The ``train.py`` run directory of a checkpoint (``<run>/checkpoints/<name>.ckpt``)."""
    return Path(ckpt_path).resolve().parent.parent


def recorded_split(ckpt_paths: list[str | Path], data_cfg: dict) -> Split:
    """The split the checkpoint(s) were trained with, read from the run's ``splits/*.csv``
    (never re-derived), with paths under ``data_cfg["root"]``.

    The checkpoint's recorded data settings must match ``data_cfg`` (another ``seed``,
    ``split``, ``fold``, ``reader_args`` ... would describe another split), and the CSVs
    must have the split fingerprint the checkpoint recorded.

    Raises:
        SplitMismatchError: a run without recorded splits, data settings that differ
            from the checkpoint's (each named), a recorded split whose fingerprint is not
            the checkpoint's, or ensemble members trained on different splits.
    """
    from ser_lightning.data.recorded_split import describe_mismatch, read_recorded_split
    from ser_lightning.errors import SplitMismatchError
    from ser_lightning.models.checkpoint import load_checkpoint

    from ser_lightning.inference.functionals import checkpoint_hyper_parameters, is_functionals_checkpoint

    split = None
    for ckpt in ckpt_paths:
        hp = checkpoint_hyper_parameters(ckpt) if is_functionals_checkpoint(ckpt) else load_checkpoint(ckpt)["hyper_parameters"]
        if hp.get("data_settings"):
            differs = describe_mismatch(hp["data_settings"], data_cfg)
            if differs:
                raise SplitMismatchError(f"{ckpt} was trained with other data settings than the ones given, so its recorded "
                                         f"split is not a split of this data: {'; '.join(differs)}")
        member = read_recorded_split(run_dir_of(ckpt), data_root=data_cfg.get("root"), fingerprint=hp.get("split_fingerprint"))
        for part in ("train", "val", "test"):
            if split is not None and [r.path for r in getattr(member, part)] != [r.path for r in getattr(split, part)]:
                raise SplitMismatchError(f"ensemble member {ckpt} was trained on another split than {ckpt_paths[0]} ({part} part differs)")
        split = split or member
    return split


def select_rows(data_cfg: dict, part: str, ckpt_paths: list[str | Path] | None = None) -> list[Utterance]:
    """The target corpus's files: all of them (``part=all``, after the gender filter),
    or one part (``train``/``val``/``test``) of the split the checkpoint was trained
    with, read from its run directory (:func:`recorded_split`).

    Raises:
        ValueError: unknown part or gender; ``part`` other than ``all`` without a checkpoint.
        CorpusNotFoundError, UnknownLabelError: from the reader.
        SplitMismatchError: see :func:`recorded_split`.
    """
    if part not in ("all", "train", "val", "test"):
        raise ConfigError(f"part='{part}' is unknown; allowed: all, train, val, test")
    if part != "all":
        if not ckpt_paths:
            raise ConfigError(f"part={part} needs the checkpoint whose recorded split it is")
        return getattr(recorded_split(ckpt_paths, data_cfg), part)
    rows = read_corpus(data_cfg["corpus"], data_cfg["root"], **dict(data_cfg.get("reader_args") or {}))
    gender = data_cfg.get("gender")
    if gender not in (None, "female", "male"):
        raise ConfigError(f"data.gender='{gender}' is unknown; allowed: female, male, null")
    return [r for r in rows if r.gender == gender] if gender else rows


def _checkpoint_name(ckpt_path) -> str:
    """A short name for a plot title: the file name, or the ensemble's size."""
    return f"ensemble of {len(ckpt_path)} checkpoints" if isinstance(ckpt_path, list) else Path(str(ckpt_path)).name


def evaluate_checkpoint(ckpt_path: str | Path | list[str | Path], data_cfg: dict, part: str = "all", unknown_labels: str = "map",
                        label_map: dict[str, str] | None = None, batch_size: int = 32, device: str | None = None,
                        output_dir: str | Path | None = None, scoring: str = "windows", test_stats: str = "training",
                        report_stats: list[str] | None = None, enrol_seed: int = 0, calibration: str = "checkpoint",
                        temperature: float | None = None, classes: str = "target", adapt: str = "none",
                        adapt_scope: str = "speaker") -> dict:
    """Evaluate a checkpoint (or a list of them, an ensemble, see
    :meth:`~ser_lightning.inference.predictor.Predictor.from_checkpoint`) on the corpus of
    ``data_cfg`` (a resolved ``conf/data``), through the one scoring path
    (:func:`ser_lightning.evaluation.scoring.score_utterances`): with the same ``scoring`` and
    ``test_stats``, ``part=test`` reproduces the run's ``metrics.json``.

    Writes into ``output_dir`` (when given): ``metrics.json``, ``per_class_metrics.csv``,
    ``predictions.csv`` and ``confusion_matrix.png``.

    Args:
        scoring: ``windows`` or ``center`` (see :data:`ser_lightning.inference.predictor.SCORING`).
        test_stats: the statistics mode behind ``eval/*`` (speaker-normalised models).
        report_stats: every mode scored into ``eval_by_stats`` (default: all of
            :data:`ser_lightning.evaluation.scoring.SPEAKER_MODES`).
        enrol_seed: seed of the enrolment draw.
        calibration, temperature: see :meth:`~ser_lightning.inference.predictor.Predictor.from_checkpoint`.
        classes: ``target``: the prediction is the arg-max over the model classes the
            target data has (after the label mapping), as cross-corpus studies score
            (RAVDESS ``calm`` cannot be chosen for a corpus without it); ``all``: over
            every class of the model. Both are reported (``eval_by_classes``); this one
            is behind ``eval/*`` and ``eval_by_stats``.
        adapt, adapt_scope: ``adapt="bn"``: every ``enrol<k>`` mode is also scored with the
            BatchNorm statistics re-estimated on its enrolment recordings (AdaBN), as
            ``enrol<k>+bn`` in ``eval_by_stats`` next to the unadapted ``enrol<k>``
            (:func:`~ser_lightning.evaluation.scoring.adapted_modes`); see :func:`~ser_lightning.evaluation.scoring.score_utterances`.

    Returns:
        The report: ``eval/war``, ``eval/uar``, ``eval/f1_macro`` (fractions; UAR and
        F1 over the classes present in the mapped target data), ``eval_by_stats``,
        file counts, the label mapping (``mapped``, ``dropped``, ``absent``), per-class
        scores, the confusion matrix and the per-speaker confusion matrices.

    Raises:
        CheckpointError: not a loadable ser-lightning checkpoint.
        CorpusNotFoundError, UnknownLabelError, UnmappableLabelError, ValueError,
        SplitMismatchError: see :func:`select_rows` and :func:`map_labels`.
    """
    import csv
    import json

    from ser_lightning.data.cache import load_or_decode
    from ser_lightning.evaluation.calibration import calibration_metrics
    from ser_lightning.evaluation.scoring import adapted_modes, score_utterances
    from ser_lightning.inference.loading import load_predictor

    if classes not in CLASS_POLICIES:
        raise ConfigError(f"classes='{classes}' is unknown; allowed: {list(CLASS_POLICIES)}")
    predictor = load_predictor(ckpt_path, device=device, scoring=scoring, calibration=calibration, temperature=temperature)
    if isinstance(getattr(predictor, "scoring", None), str) and predictor.scoring not in ("windows", "center"):
        scoring = predictor.scoring  # an SVM on functionals scores whole files, whatever scoring= says
    paths = ckpt_path if isinstance(ckpt_path, list) else [ckpt_path]
    rows = select_rows(data_cfg, part, paths)
    mapping = map_labels(Counter(r.label for r in rows), predictor.class_names, unknown_labels, label_map)
    for line in mapping.describe():
        log.info("labels: %s", line)
    kept = [r for r in rows if r.label in mapping.mapping]
    audio = load_or_decode([r.path for r in kept], predictor.sample_rate, data_cfg.get("cache_dir"), data_cfg.get("min_seconds", 0.0))
    decoded = [(i, r) for i, r in enumerate(kept) if r.path not in audio.errors]
    index = {c: k for k, c in enumerate(predictor.class_names)}
    target_classes = [c for c in predictor.class_names if c in {mapping.mapping[r.label] for _, r in decoded}]
    allowed = np.array([c in target_classes for c in predictor.class_names]) if len(target_classes) >= 2 else None
    modes, headline = adapted_modes(predictor, report_stats, test_stats, adapt)
    by_stats, scored, by_classes = {}, {}, {}
    for mode in modes:
        unrestricted = score_utterances(predictor, [r.path for _, r in decoded], [r.speaker for _, r in decoded],
                                        [index[mapping.mapping[r.label]] for _, r in decoded],
                                        lambda j: audio.wave(decoded[j][0]), mode, corpora=[r.corpus for _, r in decoded],
                                        seed=enrol_seed, batch_size=batch_size, adapt_scope=adapt_scope)
        restricted = unrestricted.restricted(allowed)
        scored[mode] = restricted if classes == "target" else unrestricted
        by_stats[mode] = scored[mode].report()
        if mode == headline:
            by_classes = {name: {k: part.report()[k] for k in ("war", "uar", "f1_macro")}
                          for name, part in (("all", unrestricted), ("target", restricted))}
    main = by_stats[headline]
    confusion = np.asarray(main["confusion_matrix"])
    per_class = per_class_metrics(confusion, predictor.class_names)
    report = {
        "eval/war": main["war"], "eval/uar": main["uar"], "eval/f1_macro": main["f1_macro"],
        "scoring": scoring, "test_stats": headline, "eval_by_stats": by_stats, "adapt": adapt,
        **({"adapt_scope": adapt_scope} if adapt != "none" else {}),
        "classes": classes, "target_classes": target_classes, "eval_by_classes": by_classes,
        "checkpoint": [str(p) for p in ckpt_path] if isinstance(ckpt_path, list) else str(ckpt_path), "corpus": data_cfg["corpus"], "root": str(data_cfg["root"]), "part": part,
        "model_classes": predictor.class_names, "unknown_labels": unknown_labels,
        "mapped": mapping.mapped, "dropped": mapping.dropped, "absent": mapping.absent,
        "n_files": len(rows), "n_evaluated": int(confusion.sum()), "n_dropped": sum(mapping.dropped.values()),
        "skipped_files": {**dict(audio.errors), **scored[headline].errors}, "per_class": per_class, "confusion_matrix": confusion.tolist(),
        "per_speaker_confusion": main["per_speaker_confusion"],
        # before: T = 1 on the model's output (an ensemble's members keep their own temperatures)
        "calibration": {"temperature": predictor.temperature,
                        "before": calibration_metrics(scored[headline].at_temperature(1.0).probabilities, scored[headline].targets),
                        "after": calibration_metrics(scored[headline].probabilities, scored[headline].targets)},
    }
    if output_dir is not None:
        from ser_lightning.metrics import write_per_class_csv
        from ser_lightning.plots import plot_confusion_matrix

        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(report, indent=2))
        write_per_class_csv(per_class, out / "per_class_metrics.csv")
        part_scores = scored[headline]
        with (out / "predictions.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "speaker", "true", "predicted", "probability"])
            for path, speaker, t, pr in zip(part_scores.paths, part_scores.speakers, part_scores.targets, part_scores.probabilities, strict=True):
                k = int(np.argmax(pr))
                writer.writerow([path, speaker, predictor.class_names[t], predictor.class_names[k], float(pr[k])])
        plot_confusion_matrix(confusion, predictor.class_names, out / "confusion_matrix.png",
                              title=f"{_checkpoint_name(ckpt_path)} on {data_cfg['corpus']} ({part}; {scoring}, {headline} statistics)")
    return report
