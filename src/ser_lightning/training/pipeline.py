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
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf

from ser_lightning.metrics import format_table
from ser_lightning.training.callbacks import DataWaitTimer, EpochTimer
from ser_lightning.training.config_validation import resume_checkpoint, validate_config
from ser_lightning.evaluation.run_scoring import (
    calibration_report,
    headline_metrics,
    score_run,
    scoring_report,
    write_scoring_artifacts,
)
from ser_lightning.training.wandb_setup import ensure_wandb_mode, report_offline_run, wait_for_offline_run

log = logging.getLogger(__name__)


def _container(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg or {})


def build_datamodule(cfg: DictConfig):
    """The DataModule of ``cfg.data`` with the run's features, augmentation and run dir.

    With a frozen encoder's embedding cache (``model=ssl``, ``model.encoder.cache=true``)
    the training crops are the scoring windows (``train_crop=windows``), so an epoch after
    the first reads every crop from the cache.
    """
    extra = {"train_crop": "windows"} if uses_embedding_cache(cfg) else {}
    if OmegaConf.select(cfg, "features.kind") in ("egemaps", "compare"):  # openSMILE descriptors: their per-file cache
        extra["feature_cache_dir"] = OmegaConf.select(cfg, "paths.feature_cache_dir")
    return instantiate(
        cfg.data,
        features=_container(cfg.features),
        augment=_container(cfg.augment),
        output_dir=str(cfg.paths.output_dir),
        _convert_="all",
        **extra,
    )


def uses_embedding_cache(cfg: DictConfig) -> bool:
    """Whether the run's model is a frozen pretrained encoder with its embedding cache on."""
    enc = (cfg.get("model") or {}).get("encoder")
    return bool(enc) and bool(enc.get("freeze", True)) and bool(enc.get("cache", False)) and bool(enc.get("cache_dir"))


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
    if OmegaConf.select(cfg, "model.name") == "svm":  # the classic baseline: no training loop (baselines/svm.py)
        from ser_lightning.baselines.svm import train_svm

        return train_svm(cfg)
    if OmegaConf.select(cfg, "model.name") == "mlp":  # a linear / MLP head on the functionals, in the Lightning loop
        return train_functionals_head(cfg)
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
            scored = None
            if cfg.get("test", True):
                calibration = calibration_report(scores, output_dir, f"{cfg.data.corpus} {cfg.model.backbone.name}")
                scored = scoring_report(cfg, dm, scores, calibration)
                metrics.update({k: v for k, v in scored.items() if k.startswith("test/")})
            for lg in loggers:
                lg.log_metrics({k: v for k, v in metrics.items() if k.startswith(("val/", "test/")) and k.count("/") == 1},
                               step=trainer.global_step)
            if scored is not None:
                write_report(cfg, dm, model, trainer, metrics, scored, best, timer, time.perf_counter() - start)
                log_test_figures(loggers, scores["test"]["headline"]["confusion_matrix"], dm.class_names)
    finally:
        finish_loggers(loggers, output_dir)
    return metrics


def train_functionals_head(cfg: DictConfig) -> dict[str, float]:
    """``model=mlp``: :func:`ser_lightning.baselines.mlp.train_mlp` with this run's loggers
    and callbacks, after the data and scoring checks every run gets.

    Raises:
        ConfigError: see :func:`~ser_lightning.baselines.mlp.check_mlp_config`.
    """
    from ser_lightning.baselines.mlp import check_mlp_config, train_mlp
    from ser_lightning.training.config_validation import data_problems, scoring_problems

    check_mlp_config(cfg, data_problems(cfg) + scoring_problems(cfg))
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    set_aside_stale_checkpoints(output_dir / "checkpoints")
    loggers = build_loggers(cfg)
    callbacks = build_callbacks(cfg, has_logger=bool(loggers))
    try:  # a failure still closes the W&B run
        return train_mlp(cfg, callbacks, loggers)
    finally:
        finish_loggers(loggers, output_dir)


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


def log_test_figures(loggers: list, confusion, class_names: list[str]) -> None:
    """The test confusion matrix and per-class table to W&B (when a W&B logger is set)."""
    from ser_lightning.training.wandb_media import log_test_figures as log_wandb

    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            log_wandb(lg, confusion, class_names)


def write_report(cfg, dm, model, trainer, metrics, scored: dict, best: Path, timer, wall_seconds) -> None:
    """Write ``metrics.json`` (``scored``: :func:`~ser_lightning.evaluation.run_scoring.scoring_report`,
    plus the training keys), ``per_class_metrics.csv`` and ``confusion_matrix.png`` and
    print the result table."""
    output_dir = Path(cfg.paths.output_dir)
    ckpt = trainer.checkpoint_callback
    try:
        best_rel = str(best.resolve().relative_to(output_dir.resolve()))
    except ValueError:
        best_rel = str(best)
    report = {
        **scored,
        # the training loop's selection score (centred clips, validation speakers' own statistics)
        "best_val_uar": float(ckpt.best_model_score) if ckpt is not None and ckpt.best_model_score is not None else None,
        # relative to the run directory: what eval.py, ensembles and results load
        "best_checkpoint": best_rel,
        "epochs": trainer.current_epoch,
        "epoch_seconds": timer.seconds if timer else [],
        "data_wait_fraction": next((c.fractions for c in trainer.callbacks if isinstance(c, DataWaitTimer)), []),
        "wall_seconds": wall_seconds,
        "split": dm.split.describe(),
        "n_train": len(dm.split.train), "n_val": len(dm.split.val), "n_test": len(dm.split.test),
        "skipped_files": len(dm.skipped),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if getattr(model.net, "last_fill", None) is not None:  # model=ssl: the cache filled before epoch 1
        report["embedding_cache"] = model.net.last_fill
    (output_dir / "metrics.json").write_text(json.dumps(report, indent=2))
    write_scoring_artifacts(cfg, dm, report)
    title = f"{cfg.data.corpus} / {cfg.model.backbone.name} / {dm.feature_config.kind} — {dm.split.describe()}"
    note = f"scoring={report['scoring']}, test-time statistics: {report['test_stats']}"
    others = [f"{m} {100 * r['uar']:.1f}" for m, r in report["test_by_stats"].items() if m != report["test_stats"]]
    if others:
        note += f" (test UAR % under the other statistics: {', '.join(others)})"
    print("\n" + format_table(metrics, title) + f"\n{note}\nrun directory: {output_dir}\n")
