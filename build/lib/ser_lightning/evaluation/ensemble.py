"""Ensembles of trained runs: average the class probabilities of several models of one split.

A seed ensemble trains one recipe several times on the same split with different
initialisations and augmentation draws (``seed=1 data.seed=42``: the first seed is the
model's, ``data.seed`` keeps the split) and averages the members' class probabilities
(softmax of the logits) with equal weights, the "deep ensemble" of Lakshminarayanan et
al. (2017), "Simple and scalable predictive uncertainty estimation using deep
ensembles", NeurIPS. Members may also be different recipes, as long as every member was
trained, validated and tested on the same utterances.

The ensemble scores the recorded validation and test utterances through the one scoring
path (:mod:`ser_lightning.evaluation.scoring`), exactly as the scoring after training scores one
run: the same policy, test-time statistics and adaptation (``adapt=bn``: every member's
BatchNorm statistics re-estimated on each speaker's enrolment recordings; from the run's ``config.yaml``), the
checkpoint the run recorded in ``metrics.json`` (the best validation UAR; with
``callbacks=ema``, the averaged weights). An ensemble of one run therefore reproduces
that run's ``metrics.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from ser_lightning.errors import CheckpointError, EnsembleError
from ser_lightning.evaluation.calibration import calibration_metrics
from ser_lightning.metrics import macro_f1, per_class_metrics, war_uar

PARTS = ("val", "test")


@dataclass
class PartScores:
    """One part of the split, scored by the ensemble under its headline statistics mode.

    Attributes:
        paths: the part's scored utterances, in split order.
        targets: ``[n]`` true class indices.
        probabilities: ``[n, n_classes]`` the members' mean class probabilities.
        member_uar: UAR of each member alone (fractions), in member order.
        mode: the headline test-time statistics mode.
        by_stats: mode -> report (:meth:`ser_lightning.evaluation.scoring.ScoredPart.report`).
        scoring: the scoring policy.
        calibration: the temperature fitted on the ensemble's validation output
            (:func:`ser_lightning.evaluation.calibration.fit_calibration`); ``probabilities`` use it.
        uncalibrated: ``[n, n_classes]`` the probabilities at ``T = 1``.
    """

    paths: list[str]
    targets: np.ndarray
    probabilities: np.ndarray
    member_uar: list[float] = field(default_factory=list)
    mode: str = ""
    by_stats: dict[str, dict] = field(default_factory=dict)
    scoring: str = ""
    calibration: dict = field(default_factory=dict)
    uncalibrated: np.ndarray | None = None

    @property
    def confusion(self) -> np.ndarray:
        """``[n_classes, n_classes]`` counts, rows true class, columns predicted."""
        n = self.probabilities.shape[1]
        return np.bincount(self.targets * n + self.probabilities.argmax(axis=1), minlength=n * n).reshape(n, n)


def run_config(run_dir: Path):
    """A run's resolved ``config.yaml``.

    Raises:
        EnsembleError: the run has none (it is not a finished ``train.py`` run).
    """
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise EnsembleError(f"{run_dir} is not a finished train.py run: it has no config.yaml")
    return OmegaConf.load(config_file)


def best_checkpoint(run_dir: Path) -> Path:
    """The checkpoint a run was scored with: the path its ``metrics.json`` records
    (relative to the run directory; an absolute path from an older run that was moved is
    looked up under ``checkpoints/``), else ``checkpoints/best.ckpt``."""
    metrics_file = run_dir / "metrics.json"
    recorded = json.loads(metrics_file.read_text()).get("best_checkpoint") if metrics_file.is_file() else None
    if recorded:
        path = Path(recorded)
        if not path.is_absolute():
            return run_dir / path
        return path if path.is_file() else run_dir / "checkpoints" / path.name
    return run_dir / "checkpoints" / "best.ckpt"


def evaluate_ensemble(run_dirs: list[str | Path], parts: tuple[str, ...] = PARTS, device: str = "cpu",
                      data_root: str | None = None) -> dict[str, PartScores]:
    """Average the class probabilities of the runs in ``run_dirs`` on each part of their
    recorded split, through the one scoring path (:mod:`ser_lightning.evaluation.scoring`), with the
    first run's scoring policy, test-time statistics and ``adapt`` (its ``config.yaml``).

    Args:
        run_dirs: ``train.py`` run directories (each with ``config.yaml``,
            ``splits/*.csv`` and its best checkpoint) trained on the same split.
        parts: parts of the split to score (``val``, ``test``).
        device: where the members run.
        data_root: the corpus root to read instead of the recorded one (the data may
            live elsewhere on this machine); ``None``: the recorded ``data.root``.

    Returns:
        part -> :class:`PartScores`.

    Raises:
        EnsembleError: no runs, an unknown part, a run that is not finished, or members
            with different classes or different utterances in a part.
    """
    from ser_lightning.data.cache import load_or_decode
    from ser_lightning.errors import SplitMismatchError
    from ser_lightning.evaluation.evaluate import recorded_split
    from ser_lightning.evaluation.scoring import adapted_modes, modes_for, score_utterances
    from ser_lightning.inference.loading import load_predictor

    if not run_dirs:
        raise EnsembleError("an ensemble needs at least one run directory")
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise EnsembleError(f"unknown part(s) {sorted(unknown)}; allowed: {list(PARTS)}")
    run_dirs = [Path(d) for d in run_dirs]
    cfg = run_config(run_dirs[0])
    for d in run_dirs[1:]:
        run_config(d)
    ckpts = [best_checkpoint(d) for d in run_dirs]
    scoring = str(cfg.get("scoring", "center"))  # runs before the scoring key were tested on centred clips
    try:
        members = [load_predictor(c, device=device, scoring=scoring) for c in ckpts]
        # calibrated as a whole: one temperature on the ensemble's output, fitted below on validation
        ensemble = load_predictor(ckpts, device=device, scoring=scoring, calibration="none")
    except CheckpointError as exc:
        raise EnsembleError(f"ensemble member: {exc}") from exc
    for d, m in zip(run_dirs[1:], members[1:], strict=True):
        if m.class_names != members[0].class_names:
            raise EnsembleError(f"ensemble member {d} has classes {m.class_names}, the first member {members[0].class_names}")
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    if data_root is not None:
        data_cfg["root"] = data_root
    # runs made before test_stats existed were tested with each speaker's own statistics
    modes, headline = adapted_modes(ensemble, list(cfg.get("report_stats") or []) or None, str(cfg.get("test_stats", "transductive")),
                                    str(cfg.get("adapt") or "none"))
    seed = int(cfg.get("enrol_seed", 0))
    classes = ensemble.class_names
    raw: dict[str, dict] = {}
    member_uars: dict[str, list[float]] = {}
    try:
        split = recorded_split(ckpts, data_cfg)
    except SplitMismatchError as exc:
        raise EnsembleError(f"ensemble members were scored on other utterances than the first member: {exc}") from exc
    for part in sorted({*parts, "val"}, key=PARTS.index):  # validation always: the temperature is fitted on it
        rows = getattr(split, part)
        audio = load_or_decode([r.path for r in rows], ensemble.sample_rate, data_cfg.get("cache_dir"), data_cfg.get("min_seconds", 0.0))
        good = [(i, r) for i, r in enumerate(rows) if r.path not in audio.errors]
        args = ([r.path for _, r in good], [r.speaker for _, r in good], [classes.index(r.label) for _, r in good],
                lambda j, good=good, audio=audio: audio.wave(good[j][0]))
        raw[part] = {mode: score_utterances(ensemble, *args, mode=mode, corpora=[r.corpus for _, r in good], seed=seed) for mode in modes}
        # a member without speaker normalisation (fused with speaker-normalised ones) is scored under its own mode
        member_uars[part] = [war_uar(score_utterances(m, *args, mode=headline if m.speaker_normalized == ensemble.speaker_normalized
                                                      else modes_for(m)[1], seed=seed).confusion())[1] for m in members]
    calibration = raw["val"][headline].fit_calibration(str(cfg.get("calibration", "auto")),
                                                      training_speakers={r.speaker for r in split.train})
    scores: dict[str, PartScores] = {}
    for part in parts:
        scored = {mode: sp.at_temperature(calibration["temperature"]) for mode, sp in raw[part].items()}
        main = scored[headline]
        scores[part] = PartScores(main.paths, main.targets, main.probabilities, member_uars[part], headline,
                                  {mode: sp.report() for mode, sp in scored.items()}, scoring, calibration,
                                  raw[part][headline].probabilities)
    return scores


def ensemble_metrics(scores: dict[str, PartScores], class_names: list[str]) -> dict:
    """The ``metrics.json`` keys of a training run for an ensemble's scores:
    ``<part>/war``, ``<part>/uar``, ``<part>/f1_macro`` (fractions, headline statistics),
    ``test_stats``, ``test_by_stats``, ``best_val_uar`` (the ensemble's validation UAR: its
    members are each their own best-validation checkpoint), per-member UARs and, for the
    test part, the confusion matrix, per-speaker confusion matrices and per-class scores."""
    metrics: dict = {"class_names": list(class_names)}
    for part, s in scores.items():
        war, uar = war_uar(s.confusion)
        per_class = per_class_metrics(s.confusion, class_names)
        metrics.update({f"{part}/war": war, f"{part}/uar": uar, f"{part}/f1_macro": macro_f1(per_class),
                        f"{part}/member_uar": s.member_uar, f"n_{part}": len(s.paths)})
        if part == "test":
            metrics.update({"confusion_matrix": s.confusion.tolist(), "per_class": per_class, "test_stats": s.mode, "scoring": s.scoring,
                            "test_by_stats": s.by_stats, "per_speaker_confusion": s.by_stats[s.mode]["per_speaker_confusion"],
                            "calibration": {**s.calibration, "test": {"before": calibration_metrics(s.uncalibrated, s.targets),
                                                                      "after": calibration_metrics(s.probabilities, s.targets)}}})
        else:
            metrics[f"{part}_by_stats"] = {m: {k: r[k] for k in ("war", "uar", "f1_macro", "n")} for m, r in s.by_stats.items()}
    if "val" in scores:
        metrics["best_val_uar"] = metrics["val/uar"]
    return metrics
