"""The training pipeline behind ``train.py``: data -> model -> fit -> test -> report.

Model selection uses validation UAR only; the test set is evaluated once, with the
best checkpoint, after training.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf

from ser_lightning.callbacks import DataWaitTimer, EpochTimer
from ser_lightning.class_report import per_class_metrics, write_per_class_csv
from ser_lightning.config_validation import resume_checkpoint, validate_config
from ser_lightning.plots import plot_confusion_matrix
from ser_lightning.wandb_setup import ensure_wandb_mode, report_offline_run, wait_for_offline_run

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


def format_table(metrics: dict[str, float], title: str) -> str:
    """A short plain-text table of the test WAR, UAR and macro-F1 (in %)."""
    rows = [("WAR (accuracy)", "test/war"), ("UAR (macro recall)", "test/uar"), ("macro-F1", "test/f1_macro")]
    lines = [title, "-" * max(len(title), 32)]
    lines += [f"{name:<20} {100 * metrics[key]:6.2f} %" for name, key in rows if key in metrics]
    return "\n".join(lines)


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
            :func:`~ser_lightning.config_validation.validate_config`).
    """
    validate_config(cfg)
    ckpt_path = resume_checkpoint(cfg)
    start = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
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
        if cfg.get("test", True):
            ckpt = trainer.checkpoint_callback
            best = ckpt.best_model_path if ckpt is not None and ckpt.best_model_path else None
            if best is None:
                log.warning("no best checkpoint; testing the current weights")
            trainer.test(model, datamodule=dm, ckpt_path=best)
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})
            if trainer.is_global_zero:
                write_report(cfg, dm, model, trainer, metrics, timer, time.perf_counter() - start)
    finally:
        finish_loggers(loggers, output_dir)
    return metrics


def metrics_by_group(predictions: torch.Tensor, targets: torch.Tensor, groups: list[str], n_classes: int) -> dict[str, dict]:
    """Test WAR and UAR per group (e.g. per corpus of a combined run).

    UAR averages recall over the classes present in the group's targets (a corpus
    without some class, e.g. CREMA-D without surprise, is not penalised for it).

    Args:
        predictions, targets: ``[n]`` class indices.
        groups: ``n`` group names.

    Returns:
        ``{group: {"war": ..., "uar": ..., "n": ...}}`` (fractions in [0, 1]).
    """
    out = {}
    for g in sorted(set(groups)):
        idx = torch.tensor([i for i, x in enumerate(groups) if x == g])
        p, t = predictions[idx], targets[idx]
        recalls = [float((p[t == c] == c).float().mean()) for c in range(n_classes) if (t == c).any()]
        out[g] = {"war": float((p == t).float().mean()), "uar": sum(recalls) / len(recalls), "n": len(idx)}
    return out


def write_report(cfg, dm, model, trainer, metrics, timer, wall_seconds) -> None:
    """Write ``metrics.json`` and ``confusion_matrix.png`` and print the result table."""
    output_dir = Path(cfg.paths.output_dir)
    ckpt = trainer.checkpoint_callback
    confusion = getattr(model, "last_test_confusion", None)
    report = {
        **{k: v for k, v in metrics.items() if k.startswith(("test/", "val/"))},
        "best_val_uar": float(ckpt.best_model_score) if ckpt is not None and ckpt.best_model_score is not None else None,
        "best_checkpoint": ckpt.best_model_path if ckpt is not None else None,
        "epochs": trainer.current_epoch,
        "epoch_seconds": timer.seconds if timer else [],
        "data_wait_fraction": next((c.fractions for c in trainer.callbacks if isinstance(c, DataWaitTimer)), []),
        "wall_seconds": wall_seconds,
        "split": dm.split.describe(),
        "class_names": dm.class_names,
        "n_train": len(dm.split.train), "n_val": len(dm.split.val), "n_test": len(dm.split.test),
        "skipped_files": len(dm.skipped),
        "parameters": sum(p.numel() for p in model.parameters()),
        "confusion_matrix": confusion.tolist() if confusion is not None else None,
        "per_class": per_class_metrics(confusion.numpy(), dm.class_names) if confusion is not None else None,
    }
    predictions = getattr(model, "last_test_predictions", None)
    corpora = [r.corpus for r in dm.split.test]
    if len(set(corpora)) > 1 and (predictions is None or len(predictions) != len(corpora)):
        log.warning("no per-corpus test metrics: %s test predictions for %d test files (limit_test_batches or several devices)",
                    "no" if predictions is None else len(predictions), len(corpora))
    elif len(set(corpora)) > 1:
        report["test_by_corpus"] = metrics_by_group(predictions, dm.targets("test"), corpora, len(dm.class_names))
    (output_dir / "metrics.json").write_text(json.dumps(report, indent=2))
    if confusion is not None:
        write_per_class_csv(report["per_class"], output_dir / "per_class_metrics.csv")
        plot_confusion_matrix(confusion.numpy(), dm.class_names, output_dir / "confusion_matrix.png",
                              title=f"{cfg.data.corpus} {cfg.model.backbone.name}: test ({dm.split.protocol})")
    title = f"{cfg.data.corpus} / {cfg.model.backbone.name} / {dm.feature_config.kind} — {dm.split.describe()}"
    print("\n" + format_table(metrics, title) + f"\nrun directory: {output_dir}\n")
