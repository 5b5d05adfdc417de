"""The training pipeline behind ``train.py``: data -> model -> fit -> score -> report.

Model selection uses validation UAR only. After training, the best checkpoint *file*
is scored on the validation and test parts by the one scoring path
(:mod:`ser_lightning.evaluation.scoring` -> :class:`~ser_lightning.inference.predictor.Predictor`), the same
that ``eval.py`` and ``predict.py`` use, so ``metrics.json`` is what a user gets from
those commands with the recorded scoring policy and test-time statistics.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf

from ser_lightning.metrics import format_table, per_class_metrics, write_per_class_csv
from ser_lightning.plots import plot_confusion_matrix
from ser_lightning.training.callbacks import DataWaitTimer, EpochTimer
from ser_lightning.training.config_validation import resume_checkpoint, validate_config
from ser_lightning.training.wandb_setup import ensure_wandb_mode, report_offline_run, wait_for_offline_run

log = logging.getLogger(__name__)


def _container(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg or {})


def build_datamodule(cfg: DictConfig):
    """The DataModule of ``cfg.data`` with the run's features, augmentation and run dir."""
    return instantiate(
        cfg.data,
        features=_container(cfg.features),
        augment=_container(cfg.augment),
        output_dir=str(cfg.paths.output_dir),
        _convert_="all",
    )


def balanced_class_weights(counts: list[int]) -> list[float]:
    """``n / (k * count_c)`` per class (scikit-learn's "balanced" weights)."""
    total, k = sum(counts), len(counts)
    return [total / (k * c) if c else 0.0 for c in counts]


def build_model(cfg: DictConfig, dm) -> L.LightningModule:
    """The LightningModule of ``cfg.model`` for the classes and features of ``dm``."""
    model_cfg = _container(cfg.model)
    if model_cfg.get("class_weights") == "balanced":
        model_cfg["class_weights"] = balanced_class_weights(dm.class_counts("train"))
    elif model_cfg.get("class_weights") in ("none", None):
        model_cfg["class_weights"] = None
    return instantiate(
        model_cfg,
        class_names=dm.class_names,
        features=dm.feature_config.to_dict(),
        clip_seconds=dm.clip_seconds,
        feature_stats=None if dm.training_stats is None else {"mean": dm.training_stats.mean.tolist(), "std": dm.training_stats.std.tolist()},
        data_settings=dm.data_settings,
        split_fingerprint=dm.split_fingerprint,
        _convert_="all",
    )


def build_callbacks(cfg: DictConfig, has_logger: bool = True) -> list[L.Callback]:
    """The callbacks of ``cfg.callbacks``; the LR monitor is left out without a logger
    (it has nowhere to write and Lightning rejects it)."""
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c and "_target_" in c]
    if not has_logger:
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    return callbacks


def build_loggers(cfg: DictConfig) -> list:
    loggers = []
    for lg in (cfg.get("logger") or {}).values():
        if not lg or "_target_" not in lg:
            continue
        if "wandb" in lg["_target_"].lower():
            mode = ensure_wandb_mode()
            log.info("W&B logger: mode %s", mode)
            if mode != "online" and lg.get("log_model"):
                # Checkpoint artifacts only make sense online; offline they would be
                # copied into W&B's staging area for nothing (they are in checkpoints/).
                lg = OmegaConf.merge(lg, {"log_model": False})
        loggers.append(instantiate(lg))
    return loggers


def finish_loggers(loggers: list, output_dir: Path) -> None:
    """Close W&B runs (so a multirun starts a new run per job) and say where they are."""
    if any(type(lg).__name__ == "WandbLogger" for lg in loggers):
        import wandb

        run_dir = Path(wandb.run.dir).parent if wandb.run is not None else None  # run.dir is <run>/files
        wandb.finish()
        if run_dir is not None and run_dir.name.startswith("offline-run-"):
            wait_for_offline_run(run_dir)
        report_offline_run(output_dir)


def train(cfg: DictConfig) -> dict[str, float]:
    """Train, validate and test one configuration.

    Writes into ``cfg.paths.output_dir``: the resolved ``config.yaml``,
    ``checkpoints/best.ckpt`` and ``last.ckpt``,
    ``splits/{train,val,test}.csv``, ``skipped_files.csv``, ``metrics.json``,
    ``per_class_metrics.csv`` and ``confusion_matrix.png`` (and, through the
    ``metrics_history`` callback, ``history.csv`` and ``training_curves.png``).

    Returns:
        The logged metrics (``val/*`` of the last validation, ``test/*`` of the best
        checkpoint).

    Raises:
        ConfigError: an invalid config value, before any data is read (see
            :func:`~ser_lightning.training.config_validation.validate_config`).
    """
    validate_config(cfg)
    ckpt_path = resume_checkpoint(cfg)
    start = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if ckpt_path is None and cfg.get("train", True):
        set_aside_stale_checkpoints(output_dir / "checkpoints")
    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    L.seed_everything(cfg.seed, workers=True)
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup("fit")
    model = build_model(cfg, dm)
    loggers = build_loggers(cfg)
    callbacks = build_callbacks(cfg, has_logger=bool(loggers))
    timer = next((c for c in callbacks if isinstance(c, EpochTimer)), None)
    try:  # from here on, a failure still closes the W&B run (the next multirun job needs its own)
        trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
        for lg in loggers:
            lg.log_hyperparams(_container(cfg))
        if cfg.get("train", True):
            trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        if trainer.is_global_zero:
            best = scored_checkpoint(trainer, cfg, output_dir)
            scores = score_run(best, dm, cfg)
            metrics.update(headline_metrics(scores, parts=("val", "test") if cfg.get("test", True) else ("val",)))
            calibration = None
            if cfg.get("test", True):
                calibration = calibration_report(scores, output_dir, f"{cfg.data.corpus} {cfg.model.backbone.name}")
                for when, key in (("after", ""), ("before", "_uncalibrated")):
                    metrics.update({f"test/{m}{key}": float(calibration["test"][when][m]) for m in ("ece", "nll", "brier")})
            for lg in loggers:
                lg.log_metrics({k: v for k, v in metrics.items() if k.startswith(("val/", "test/")) and k.count("/") == 1},
                               step=trainer.global_step)
            if cfg.get("test", True):
                write_report(cfg, dm, model, trainer, metrics, scores, calibration, best, timer, time.perf_counter() - start)
                log_test_figures(loggers, scores["test"]["headline"]["confusion_matrix"], dm.class_names)
    finally:
        finish_loggers(loggers, output_dir)
    return metrics


def set_aside_stale_checkpoints(ckpt_dir: Path) -> None:
    """Move checkpoints left in a fresh run's directory (an earlier, unfinished run with
    the same ``hydra.run.dir``) into ``checkpoints/stale-<time>/``, so nothing later loads
    an old ``best.ckpt`` as this run's (Lightning would write ``best-v1.ckpt`` beside it)."""
    old = sorted(ckpt_dir.glob("*.ckpt")) if ckpt_dir.is_dir() else []
    if not old:
        return
    target = ckpt_dir / time.strftime("stale-%Y%m%d-%H%M%S")
    target.mkdir(parents=True, exist_ok=True)
    for f in old:
        f.rename(target / f.name)
    log.warning("moved %d checkpoint(s) of an earlier run in this directory to %s (this run starts afresh; "
                "resume=true continues a run instead)", len(old), target)


def scored_checkpoint(trainer: L.Trainer, cfg: DictConfig, output_dir: Path) -> Path:
    """The checkpoint file the run is scored with: the best validation UAR; without one
    (no checkpoint callback, or ``train=false``), ``cfg.ckpt_path``, else the current
    weights saved as ``checkpoints/final.ckpt``."""
    ckpt = trainer.checkpoint_callback
    if ckpt is not None and ckpt.best_model_path:
        return Path(ckpt.best_model_path)
    if cfg.get("ckpt_path"):
        return Path(str(cfg.ckpt_path))
    final = output_dir / "checkpoints" / "final.ckpt"
    log.warning("no best checkpoint; scoring the current weights (saved as %s)", final)
    trainer.save_checkpoint(final)
    return final


def score_run(ckpt_path: Path, dm, cfg: DictConfig) -> dict[str, dict]:
    """Score the validation and test parts of ``dm``'s split with the checkpoint file,
    under every test-time statistics mode that applies (see :mod:`ser_lightning.evaluation.scoring`),
    and calibrate it: with ``cfg.calibration=temperature`` a temperature is fitted on the
    validation part's window logits (headline statistics) and stored in the checkpoint
    (``hyper_parameters["calibration"]``), so every later caller scores with it.

    Returns:
        ``{"val"|"test": {"headline": report, "by_stats": {mode: report}, "part": ScoredPart
        of the headline, "uncalibrated": ScoredPart of the headline at T = 1, "mode": str},
        "calibration": the stored calibration entry}`` (reports of
        :meth:`~ser_lightning.evaluation.scoring.ScoredPart.report`).

    Raises:
        ValueError: ``test_stats`` names a mode that does not apply to the model, or an
            unknown ``calibration``.
    """
    from ser_lightning.evaluation.calibration import fit_calibration
    from ser_lightning.evaluation.scoring import UTTERANCE_MODE, modes_for, score_utterances
    from ser_lightning.inference.predictor import Predictor

    method = str(cfg.get("calibration", "temperature"))
    device = "cuda" if torch.cuda.is_available() and str(cfg.trainer.get("accelerator", "auto")) != "cpu" else "cpu"
    predictor = Predictor.from_checkpoint(ckpt_path, device=device, scoring=str(cfg.get("scoring", "windows")), calibration="none")
    modes = modes_for(predictor, list(cfg.get("report_stats") or []) or None)
    headline = UTTERANCE_MODE if not predictor.speaker_normalized else str(cfg.get("test_stats", "training"))
    if headline not in modes:
        modes.append(headline)
    raw: dict[str, dict] = {}
    for part in ("val", "test"):
        rows = getattr(dm.split, part)
        args = ([r.path for r in rows], [r.speaker for r in rows], [dm.class_names.index(r.label) for r in rows],
                dm.waveform_of(rows))
        raw[part] = {mode: score_utterances(predictor, *args, mode=mode, corpora=[r.corpus for r in rows],
                                            seed=int(cfg.get("enrol_seed", 0))) for mode in modes}
    calibration = fit_calibration(*raw["val"][headline].window_logits(), method=method, fitted_on="val")
    store_calibration(ckpt_path, calibration)
    temperature = float(calibration["temperature"])
    out: dict[str, dict] = {"calibration": calibration}
    for part in ("val", "test"):
        parts = {mode: scored.at_temperature(temperature) for mode, scored in raw[part].items()}
        by_stats = {mode: scored.report() for mode, scored in parts.items()}
        out[part] = {"headline": by_stats[headline], "by_stats": by_stats, "part": parts[headline],
                     "uncalibrated": raw[part][headline], "mode": headline}
    return out


def store_calibration(ckpt_path: Path, calibration: dict) -> None:
    """Write ``calibration`` into the checkpoint's hyper-parameters (atomically: a new
    file renamed over the old one, so an interruption leaves the old checkpoint whole)."""
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["calibration"] = calibration
    tmp = ckpt_path.with_suffix(".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(ckpt_path)


def calibration_report(scores: dict[str, dict], output_dir: Path, title: str) -> dict:
    """ECE, NLL and Brier score before and after calibration (validation and test), the
    test part's risk-coverage table; writes ``reliability_diagram.png`` and
    ``risk_coverage.png`` (test part) into ``output_dir``."""
    from ser_lightning.evaluation.calibration import calibration_metrics, reliability_diagram, risk_coverage, risk_coverage_plot

    out = {**scores["calibration"]}
    for part in ("val", "test"):
        before = calibration_metrics(scores[part]["uncalibrated"].probabilities, scores[part]["uncalibrated"].targets)
        after = calibration_metrics(scores[part]["part"].probabilities, scores[part]["part"].targets)
        out[part] = {"before": before, "after": after}
    test = scores["test"]["part"]
    reliability_diagram(out["test"]["before"]["bins"], out["test"]["after"]["bins"], output_dir / "reliability_diagram.png",
                        title=f"{title}: test, T = {out['temperature']:.2f}")
    out["risk_coverage"] = risk_coverage(test.probabilities, test.targets)
    risk_coverage_plot(out["risk_coverage"], output_dir / "risk_coverage.png", title=f"{title}: test")
    return out


def headline_metrics(scores: dict[str, dict], parts=("val", "test")) -> dict[str, float]:
    """``<part>/war``, ``<part>/uar``, ``<part>/f1_macro`` of the headline statistics mode."""
    return {f"{part}/{key}": float(scores[part]["headline"][key]) for part in parts for key in ("war", "uar", "f1_macro")}


def log_test_figures(loggers: list, confusion, class_names: list[str]) -> None:
    """The test confusion matrix and per-class table to W&B (when a W&B logger is set)."""
    from ser_lightning.training.wandb_media import log_test_figures as log_wandb

    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            log_wandb(lg, confusion, class_names)


def write_report(cfg, dm, model, trainer, metrics, scores, calibration: dict, best: Path, timer, wall_seconds) -> None:
    """Write ``metrics.json``, ``per_class_metrics.csv`` and ``confusion_matrix.png`` and
    print the result table."""
    output_dir = Path(cfg.paths.output_dir)
    ckpt = trainer.checkpoint_callback
    test = scores["test"]
    confusion = np.asarray(test["headline"]["confusion_matrix"])
    try:
        best_rel = str(best.resolve().relative_to(output_dir.resolve()))
    except ValueError:
        best_rel = str(best)
    report = {
        **{k: v for k, v in metrics.items() if k.split("/")[0] in ("val", "test") and k.split("/")[-1] != "loss"},
        "scoring": str(cfg.get("scoring", "windows")),
        "test_stats": test["mode"],
        "test_by_stats": test["by_stats"],
        "val_by_stats": {m: {k: v for k, v in r.items() if k in ("war", "uar", "f1_macro", "n")} for m, r in scores["val"]["by_stats"].items()},
        "per_speaker_confusion": test["headline"]["per_speaker_confusion"],
        "calibration": calibration,
        # the training loop's selection score (centred clips, validation speakers' own statistics)
        "best_val_uar": float(ckpt.best_model_score) if ckpt is not None and ckpt.best_model_score is not None else None,
        # relative to the run directory: what eval.py, ensembles and results load
        "best_checkpoint": best_rel,
        "epochs": trainer.current_epoch,
        "epoch_seconds": timer.seconds if timer else [],
        "data_wait_fraction": next((c.fractions for c in trainer.callbacks if isinstance(c, DataWaitTimer)), []),
        "wall_seconds": wall_seconds,
        "split": dm.split.describe(),
        "split_fingerprint": dm.split_fingerprint,
        "class_names": dm.class_names,
        "n_train": len(dm.split.train), "n_val": len(dm.split.val), "n_test": len(dm.split.test),
        "skipped_files": len(dm.skipped),
        "parameters": sum(p.numel() for p in model.parameters()),
        "confusion_matrix": confusion.tolist(),
        "per_class": per_class_metrics(confusion, dm.class_names),
    }
    part = test["part"]
    if len(set(part.corpora)) > 1:
        from ser_lightning.evaluation.scoring import by_group

        report["test_by_corpus"] = by_group(part, part.corpora)
    (output_dir / "metrics.json").write_text(json.dumps(report, indent=2))
    write_per_class_csv(report["per_class"], output_dir / "per_class_metrics.csv")
    plot_confusion_matrix(confusion, dm.class_names, output_dir / "confusion_matrix.png",
                          title=f"{cfg.data.corpus} {cfg.model.backbone.name}: test ({dm.split.protocol}; {report['scoring']}, "
                                f"{report['test_stats']} statistics)")
    title = f"{cfg.data.corpus} / {cfg.model.backbone.name} / {dm.feature_config.kind} — {dm.split.describe()}"
    note = f"scoring={report['scoring']}, test-time statistics: {report['test_stats']}"
    others = [f"{m} {100 * r['uar']:.1f}" for m, r in test["by_stats"].items() if m != test["mode"]]
    if others:
        note += f" (test UAR % under the other statistics: {', '.join(others)})"
    print("\n" + format_table(metrics, title) + f"\n{note}\nrun directory: {output_dir}\n")
