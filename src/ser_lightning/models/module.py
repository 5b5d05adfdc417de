"""The LightningModule shared by every backbone: loss, optimisation and metrics.

Metrics: a confusion matrix is accumulated per epoch (torchmetrics, synchronised across
devices) and WAR (weighted average recall = accuracy), UAR (unweighted average recall =
macro recall over the classes with true examples, the standard SER metric for imbalanced
classes, Schuller et al., 2009) and macro-F1 are computed from it by
:mod:`ser_lightning.metrics`, the one definition that evaluation, ensembles and the
results table use too. Testing is not a step of this module: after training the best
checkpoint file is scored by :mod:`ser_lightning.evaluation.scoring`, the path every command shares.

The module's hyper-parameters hold everything prediction needs (feature front-end,
class names, sample rate, clip length) as plain Python values, so a checkpoint is
self-contained and loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics.classification import MulticlassConfusionMatrix

from ser_lightning.errors import ConfigError
from ser_lightning.metrics import confusion_scores
from ser_lightning.models.backbones import build_backbone
from ser_lightning.transforms.features import FeatureConfig

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
SCHEDULERS = ("none", "cosine", "plateau", "onecycle")


def checked_optimization(optimizer: dict | None, scheduler: dict | None) -> tuple[dict, dict]:
    """``model.optimizer`` and ``model.scheduler`` with their defaults (AdamW at 1e-3, no
    schedule), checked.

    Raises:
        ConfigError: an unknown optimizer or scheduler name, or a learning rate not > 0.
    """
    optimizer = dict(optimizer or {"name": "adamw", "lr": 1e-3})
    scheduler = dict(scheduler or {"name": "none"})
    if optimizer.get("name") not in OPTIMIZERS:
        raise ConfigError(f"model.optimizer.name='{optimizer.get('name')}' is unknown; allowed: {sorted(OPTIMIZERS)}")
    if not optimizer.get("lr", 0) > 0:
        raise ConfigError(f"model.optimizer.lr must be > 0, got {optimizer.get('lr')}")
    if scheduler.get("name") not in SCHEDULERS:
        raise ConfigError(f"model.scheduler.name='{scheduler.get('name')}' is unknown; allowed: {list(SCHEDULERS)}")
    return optimizer, scheduler


class SERModule(L.LightningModule):
    """Emotion classifier: features ``[batch, n_features, frames]`` -> logits ``[batch, n_classes]``.

    Args:
        backbone: ``{"name": ..., **backbone kwargs}`` (see :data:`ser_lightning.models.BACKBONES`).
        class_names: class names in index order.
        features: the feature front-end's settings (:class:`FeatureConfig` as a dict).
        clip_seconds: clip length the model was trained on, in seconds.
        optimizer: ``{"name": adam|adamw|sgd, "lr": ..., **kwargs}``.
        scheduler: ``{"name": none|cosine|plateau|onecycle, ...}``.
        label_smoothing: cross-entropy label smoothing in [0, 1).
        class_weights: per-class loss weights (``None``: unweighted).
        feature_stats: with ``features.normalize=speaker``, the feature mean and standard
            deviation pooled over the training speakers, ``{"mean": [n_features],
            "std": [n_features]}``; kept in the checkpoint for prediction.
        data_settings: the data settings the model was trained with
            (:func:`~ser_lightning.data.recorded_split.data_fingerprint`), checked by
            ``eval.py part=...`` against the data it is given.
        split_fingerprint: the fingerprint of the split it was trained, validated and
            tested on (:func:`~ser_lightning.data.recorded_split.split_fingerprint`).
        encoder: ``model=ssl`` only: the pretrained encoder's settings (``model.encoder``,
            :class:`~ser_lightning.models.ssl.SSLClassifier`); the checkpoint stores them
            with the weight file's absolute path and SHA-256 filled in, and leaves the
            frozen encoder weights out (they are loaded from that file).

    Raises:
        ValueError: an unknown optimizer or scheduler, a non-positive learning rate,
            fewer than 2 classes.
    """

    def __init__(
        self,
        backbone: dict,
        class_names: list[str],
        features: dict,
        clip_seconds: float,
        optimizer: dict | None = None,
        scheduler: dict | None = None,
        label_smoothing: float = 0.0,
        class_weights: list[float] | None = None,
        feature_stats: dict | None = None,
        data_settings: dict | None = None,
        split_fingerprint: str | None = None,
        encoder: dict | None = None,
    ):
        super().__init__()
        optimizer, scheduler = checked_optimization(optimizer, scheduler)
        if len(class_names) < 2:
            raise ValueError(f"need at least 2 classes, got {class_names}")
        self.save_hyperparameters()
        self.class_names = list(class_names)
        self.feature_config = FeatureConfig.from_dict(features)
        backbone = dict(backbone)
        if encoder is not None:
            backbone["encoder"] = dict(encoder)
        self.net = build_backbone(backbone.pop("name"), self.feature_config.n_features, len(class_names), **backbone)
        if hasattr(self.net, "encoder_record"):  # model=ssl: record the weight file the encoder was loaded from
            self.hparams["encoder"] = self.net.encoder_record(dict(encoder or {}))
            # the frozen encoder's weights are not in the checkpoint (see on_save_checkpoint)
            self.strict_loading = False
        weight = torch.tensor(class_weights, dtype=torch.float) if class_weights else None
        self.criterion = nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
        n = len(class_names)
        self.train_confusion = MulticlassConfusionMatrix(n)
        self.val_confusion = MulticlassConfusionMatrix(n)

    @property
    def sample_rate(self) -> int:
        return self.feature_config.sample_rate

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """``[batch, n_features, frames]`` -> logits ``[batch, n_classes]``."""
        return self.net(feats)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], confusion: MulticlassConfusionMatrix, stage: str) -> torch.Tensor:
        feats, targets = batch
        logits = self(feats)
        # Soft targets [batch, n_classes] (mixup) are scored against their larger part.
        loss = self.criterion(logits, targets)
        hard = targets.argmax(dim=1) if targets.dim() == 2 else targets
        confusion.update(logits.detach().argmax(dim=1), hard)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=targets.shape[0], sync_dist=not on_step)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, self.train_confusion, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, self.val_confusion, "val")

    def _log_epoch(self, confusion: MulticlassConfusionMatrix, prefix: str) -> None:
        # compute() gathers the matrix over devices, so every rank logs the same scores
        cm = confusion.compute().cpu().numpy()
        if cm.sum() > 0:
            self.log_dict({prefix + k: v for k, v in confusion_scores(cm).items()}, prog_bar=True)
        confusion.reset()

    def on_train_epoch_end(self) -> None:
        self._log_epoch(self.train_confusion, "train/")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch(self.val_confusion, "val/")

    def on_fit_start(self) -> None:
        """A frozen encoder with an embedding cache (``model=ssl``): compute every scoring
        window of the training files once, before the first epoch, when the DataModule
        offers them (``training_windows``); every epoch then costs only the head."""
        fill = getattr(self.net, "fill_cache", None)
        dm = getattr(self.trainer, "datamodule", None)
        if fill is not None and getattr(self.net, "cache", None) is not None and hasattr(dm, "training_windows"):
            fill(dm.training_windows(), self.device)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Leave out the parameters the backbone loads from a file of its own (a frozen
        pretrained encoder: hundreds of MB per checkpoint otherwise)."""
        if hasattr(self.net, "weights_from_file"):
            for key in self.net.weights_from_file():
                checkpoint["state_dict"].pop(f"net.{key}", None)

    def configure_optimizers(self) -> Any:
        opt_cfg = dict(self.hparams.optimizer)
        # a backbone with parameter groups (model=ssl: the head, and fine-tuned encoder layers at their own lr)
        params = self.net.parameter_groups(opt_cfg["lr"]) if hasattr(self.net, "parameter_groups") else self.parameters()
        optimizer = OPTIMIZERS[opt_cfg.pop("name")](params, **opt_cfg)
        sch_cfg = dict(self.hparams.scheduler)
        name = sch_cfg.pop("name")
        if name == "none":
            return optimizer
        if name == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max", factor=sch_cfg.get("factor", 0.5), patience=sch_cfg.get("patience", 3)
            )
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val/uar"}}
        total = max(1, int(self.trainer.estimated_stepping_batches))
        if name == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total,
                                                            pct_start=sch_cfg.get("pct_start", 0.1))
        else:  # cosine with linear warm-up, per step
            warmup = int(sch_cfg.get("warmup_fraction", 0.05) * total)

            def factor(step: int) -> float:
                if step < warmup:
                    return (step + 1) / warmup
                progress = (step - warmup) / max(1, total - warmup)
                return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
