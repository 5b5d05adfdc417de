"""A linear or small MLP head on openSMILE utterance functionals, trained by the Lightning loop.

``python train.py model=mlp features=egemaps|compare data=...`` (or
``python scripts/results.py run <protocol> --model mlp --features egemaps``): the same
files, functionals, split and standardisation as the SVM baseline
(:mod:`ser_lightning.baselines.functionals`), then

1. classifier: :class:`~ser_lightning.models.mlp.MLPHead` (``model.hidden``: ``[]`` is the
   linear / softmax-regression head), cross-entropy (class-balanced weights by default,
   as the SVM's ``class_weight="balanced"``), trained by a Lightning ``Trainer`` built from
   ``cfg.trainer`` with the run's callbacks and loggers (``cfg.callbacks``, ``cfg.logger``:
   best checkpoint on **validation UAR**, early stopping, history, CSV / W&B logs) through
   :class:`FunctionalsMLPModule`, which shares :class:`~ser_lightning.models.module.SERModule`'s
   loss, metrics, optimisers and schedulers;
2. the standardisation statistics of the training part are buffers of the module
   (``training_mean``, ``training_std`` in the checkpoint's ``state_dict``), so
   ``checkpoints/best.ckpt`` is all inference needs;
3. scores: ``best.ckpt`` is scored by the one scorer through
   :class:`~ser_lightning.inference.functionals.FunctionalsPredictor` (what ``eval.py``,
   ``predict.py`` and ensembles load), calibrated on validation (``calibration``), under
   every test-time statistics mode that applies (``standardize=speaker``: transductive,
   enrol<k>, training), into the ``metrics.json`` every recipe writes.

No augmentation (the functionals are those of the whole original file), no resuming.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassConfusionMatrix

from ser_lightning.baselines.functionals import Standardizer, functionals_config_problems, prepare_functionals, score_functionals_run
from ser_lightning.errors import ConfigError
from ser_lightning.models.mlp import MLPHead
from ser_lightning.models.module import SERModule, checked_optimization

log = logging.getLogger(__name__)


class FunctionalsMLPModule(SERModule):
    """Standardised functionals ``[batch, n_features]`` -> logits ``[batch, n_classes]``,
    trained with :class:`~ser_lightning.models.module.SERModule`'s cross-entropy, confusion
    matrix metrics (``train/*``, ``val/uar`` ...), optimisers and schedulers.

    Its own ``__init__`` (not SERModule's, which builds a frame-level feature front-end and
    backbone this model does not have) keeps the hyper-parameters inference reads:
    ``class_names``, ``features`` (``{"kind", "level": "functionals", "names"}``),
    ``n_features``, ``hidden``, ``dropout``, ``input_dropout``, ``standardize``,
    ``sample_rate``, ``data_settings``, ``split_fingerprint``; the training part's
    standardisation statistics are the buffers ``training_mean`` / ``training_std``
    (``[n_features]``, set with :meth:`set_training_stats`).

    Raises:
        ConfigError: an unknown optimizer or scheduler, a non-positive learning rate, bad
            head sizes (see :class:`~ser_lightning.models.mlp.MLPHead`).
    """

    def __init__(self, class_names: list[str], features: dict, n_features: int, hidden: list[int] | None = None,
                 dropout: float = 0.3, input_dropout: float = 0.0, standardize: str = "training", sample_rate: int = 16000,
                 optimizer: dict | None = None, scheduler: dict | None = None, label_smoothing: float = 0.0,
                 class_weights: list[float] | None = None, data_settings: dict | None = None, split_fingerprint: str | None = None,
                 layer_blocks: dict | None = None):
        L.LightningModule.__init__(self)  # see the class docstring: SERModule's own __init__ does not apply
        optimizer, scheduler = checked_optimization(optimizer, scheduler)
        hidden = [int(h) for h in (hidden or [])]
        self.save_hyperparameters({  # named explicitly: Lightning's frame inspection looks for SERModule's arguments
            "class_names": list(class_names), "features": dict(features), "n_features": int(n_features), "hidden": hidden,
            "dropout": float(dropout), "input_dropout": float(input_dropout), "standardize": standardize, "sample_rate": int(sample_rate),
            "optimizer": optimizer, "scheduler": scheduler, "label_smoothing": float(label_smoothing), "class_weights": class_weights,
            "data_settings": data_settings, "split_fingerprint": split_fingerprint, "layer_blocks": layer_blocks})
        self.class_names = list(class_names)
        self.net = MLPHead(int(n_features), len(class_names), hidden, dropout, input_dropout, layer_blocks)
        self.register_buffer("training_mean", torch.zeros(int(n_features)))
        self.register_buffer("training_std", torch.ones(int(n_features)))
        weight = torch.tensor(class_weights, dtype=torch.float) if class_weights else None
        self.criterion = nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
        self.train_confusion = MulticlassConfusionMatrix(len(class_names))
        self.val_confusion = MulticlassConfusionMatrix(len(class_names))

    @property
    def sample_rate(self) -> int:
        return int(self.hparams.sample_rate)

    def set_training_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Store the training part's ``(mean, std)`` (``[n_features]`` each) with the model."""
        self.training_mean.copy_(torch.as_tensor(np.asarray(mean), dtype=torch.float32))
        self.training_std.copy_(torch.as_tensor(np.asarray(std), dtype=torch.float32))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """``[batch, n_features]`` standardised functionals -> ``[batch, n_classes]`` logits."""
        return self.net(feats)


def check_mlp_config(cfg: DictConfig, problems: list[str] | None = None) -> None:
    """One :class:`ConfigError` listing every problem of a ``model=mlp`` config (and ``problems``
    found by the caller, e.g. the data and scoring checks of the training pipeline)."""
    problems = list(problems or []) + functionals_config_problems(cfg, "mlp")
    hidden = cfg.model.get("hidden")
    hidden = list(hidden) if hidden is not None else None
    if hidden is None or any(not isinstance(h, int) or isinstance(h, bool) or h < 1 for h in hidden):
        problems.append(f"model.hidden={hidden}: a list of layer widths >= 1 ([] for the linear head)")
    for key in ("dropout", "input_dropout"):
        p = cfg.model.get(key, 0.0)
        if not isinstance(p, (int, float)) or not 0.0 <= float(p) < 1.0:
            problems.append(f"model.{key}={p}: a probability in [0, 1)")
    if cfg.model.get("layers", "concat") not in ("concat", "weighted"):
        problems.append(f"model.layers={cfg.model.get('layers')}: allowed concat, weighted")
    elif cfg.model.get("layers") == "weighted" and OmegaConf.select(cfg, "features.kind") != "encoder":
        problems.append("model.layers=weighted combines an encoder's layers: it needs features=encoder")
    if cfg.model.get("class_weights") not in ("balanced", "none", None):
        problems.append(f"model.class_weights={cfg.model.get('class_weights')}: allowed balanced, none")
    if cfg.get("resume") or cfg.get("ckpt_path"):
        problems.append("resume / ckpt_path: model=mlp trains afresh (it takes seconds); leave them unset")
    if not cfg.get("train", True) or not cfg.get("test", True):
        problems.append("train=false / test=false: model=mlp always trains and scores (use eval.py on its checkpoint to score again)")
    if problems:
        raise ConfigError("invalid model=mlp config:\n  " + "\n  ".join(problems))


def _layer_blocks(data) -> dict:
    """The encoder embedding's layout (:class:`~ser_lightning.models.mlp.MLPHead`'s ``layer_blocks``)."""
    enc = data.extractor.encoder
    return {"layers": enc.num_layers, "dim": enc.dim, "std_layers": 1 if data.extractor.stats == "mean+last_std" else enc.num_layers}


def _loader(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    data = TensorDataset(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long))
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=torch.Generator().manual_seed(seed) if shuffle else None)


def train_mlp(cfg: DictConfig, callbacks: list, loggers: list) -> dict[str, float]:
    """Train, select (validation UAR) and score the MLP / linear head of ``cfg`` (``model=mlp``).

    Writes the run directory every recipe writes: ``config.yaml``, ``splits/``,
    ``skipped_files.csv``, ``checkpoints/best.ckpt`` and ``last.ckpt`` (the
    ``model_checkpoint`` callback), ``history.csv`` (``metrics_history``), ``metrics.json``,
    ``per_class_metrics.csv``, ``confusion_matrix.png``, ``reliability_diagram.png``.

    Args:
        callbacks, loggers: the run's (``training.pipeline.build_callbacks`` / ``build_loggers``).

    Returns:
        The headline ``val/*`` and ``test/*`` metrics.

    Raises:
        ConfigError: see :func:`check_mlp_config`.
        DataQualityError: more than ``data.max_bad_fraction`` of the files unusable.
    """
    check_mlp_config(cfg)
    start = time.perf_counter()
    out_dir = Path(cfg.paths.output_dir)
    L.seed_everything(int(cfg.seed), workers=True)
    data = prepare_functionals(cfg)
    tr, va = data.parts["train"], data.parts["val"]
    standardize = str(cfg.model.standardize)
    standardizer = Standardizer(standardize, tr.x)
    x = data.standardized(standardizer)

    k = len(data.class_names)
    counts = np.bincount(tr.y, minlength=k)
    weights = None
    if cfg.model.get("class_weights") == "balanced":  # scikit-learn's "balanced": n / (k * count)
        weights = [float(len(tr.y) / (k * c)) if c else 0.0 for c in counts]
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    module = FunctionalsMLPModule(
        class_names=data.class_names,
        features=data.record,
        n_features=data.n_features, hidden=list(model_cfg.get("hidden") or []), dropout=float(model_cfg.get("dropout", 0.0)),
        input_dropout=float(model_cfg.get("input_dropout", 0.0)), standardize=standardize, sample_rate=data.sample_rate,
        optimizer=model_cfg.get("optimizer"), scheduler=model_cfg.get("scheduler"),
        label_smoothing=float(model_cfg.get("label_smoothing", 0.0)), class_weights=weights,
        data_settings=data.data_settings, split_fingerprint=data.fingerprint,
        layer_blocks=_layer_blocks(data) if model_cfg.get("layers") == "weighted" else None)
    module.set_training_stats(*standardizer.training_stats)
    batch_size = int(OmegaConf.select(cfg, "data.batch_size") or 32)
    train_loader = _loader(x["train"], tr.y, batch_size, True, int(cfg.seed))
    val_loader = _loader(x["val"], va.y, 512, False, 0)

    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=val_loader)
    ckpt_cb = trainer.checkpoint_callback
    if ckpt_cb is not None and ckpt_cb.best_model_path:
        best = Path(ckpt_cb.best_model_path)
    else:
        best = out_dir / "checkpoints" / "final.ckpt"
        log.warning("no best checkpoint (no model_checkpoint callback); scoring the last weights (saved as %s)", best)
        trainer.save_checkpoint(best)
    try:
        best_rel = str(best.resolve().relative_to(out_dir.resolve()))
    except ValueError:
        best_rel = str(best)
    timer = next((c for c in callbacks if type(c).__name__ == "EpochTimer"), None)
    extra = {
        "best_val_uar": float(ckpt_cb.best_model_score) if ckpt_cb is not None and ckpt_cb.best_model_score is not None else None,
        "best_checkpoint": best_rel,
        "epochs": trainer.current_epoch,
        "epoch_seconds": timer.seconds if timer else [],
        "mlp": {"hidden": list(module.hparams.hidden), "layers": model_cfg.get("layers", "concat"), "dropout": module.hparams.dropout,
                "input_dropout": module.hparams.input_dropout,
                "standardize": standardize, "class_weights": weights},
        "parameters": sum(p.numel() for p in module.net.parameters()),
    }
    head = "linear" if not module.hparams.hidden else f"MLP {list(module.hparams.hidden)}"
    metrics = score_functionals_run(cfg, data, best, f"{data.feature_set} + {head}", extra, start=start)
    for lg in loggers:
        lg.log_metrics({k: v for k, v in metrics.items() if k.count("/") == 1}, step=trainer.global_step)
    return metrics
