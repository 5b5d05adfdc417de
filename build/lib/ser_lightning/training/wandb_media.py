"""W&B figures beyond scalar curves: validation clips, confusion matrix, per-class table.

Active only when the run has a :class:`~lightning.pytorch.loggers.WandbLogger`; with
any other logger (or none) the callback does nothing, and the same information is in
the run directory (``confusion_matrix.png``, ``per_class_metrics.csv``).

Logged keys:

- ``val/examples`` (every validation epoch): a table of ``num_clips`` fixed validation
  clips (one per class first) with the audio, its log-mel/MFCC image as the model sees
  it, the true and the predicted label and the predicted probability.
- ``test/confusion_matrix`` (after scoring the best checkpoint, :func:`log_test_figures`): W&B's confusion-matrix
  chart (its data table is stored as ``test/confusion_matrix_table``).
- ``test/per_class``: precision, recall, F1 and support per class.
"""

from __future__ import annotations

import logging

import lightning as L
import numpy as np
import torch

from ser_lightning.metrics import per_class_metrics

log = logging.getLogger(__name__)


def spectrogram_rgb(feats: torch.Tensor | np.ndarray, cmap: str = "magma") -> np.ndarray:
    """Features ``[n_features, frames]`` -> an ``[n_features, frames, 3]`` uint8 image,
    low bins at the bottom, scaled to the clip's own min..max."""
    import matplotlib

    x = np.asarray(feats.detach().cpu() if isinstance(feats, torch.Tensor) else feats, dtype=np.float32)
    x = (x - x.min()) / max(float(x.max() - x.min()), 1e-8)
    return (matplotlib.colormaps[cmap](x[::-1])[..., :3] * 255).astype(np.uint8)


def pick_clips(targets: torch.Tensor, num_clips: int) -> list[int]:
    """Dataset indices of up to ``num_clips`` clips: the first clip of each class (in
    class order), then the following clips in dataset order."""
    targets = targets.tolist()
    first = sorted({t: i for i, t in reversed(list(enumerate(targets)))}.items())
    chosen = [i for _, i in first][:num_clips]
    chosen += [i for i in range(len(targets)) if i not in chosen][: max(0, num_clips - len(chosen))]
    return sorted(chosen)


class WandbFigures(L.Callback):
    """Log validation examples per epoch and test figures to W&B (rank 0 only).

    Args:
        num_clips: validation clips logged per epoch (0 turns the examples off).
    """

    def __init__(self, num_clips: int = 4):
        self.num_clips = num_clips

    @staticmethod
    def _logger(trainer):
        from lightning.pytorch.loggers import WandbLogger

        return next((lg for lg in trainer.loggers if isinstance(lg, WandbLogger)), None)

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        logger = self._logger(trainer)
        if logger is None or trainer.sanity_checking or not trainer.is_global_zero or self.num_clips <= 0:
            return
        import wandb

        dm = trainer.datamodule
        dataset = dm.val_dataloader().dataset
        idx = pick_clips(dataset.targets, self.num_clips)
        waves, _, *speakers = dataset.__getitems__(list(idx))
        waves = waves.to(pl_module.device)
        feats = dm.transform_batch(waves, training=False, speakers=speakers[0] if speakers else None)
        probs = torch.softmax(pl_module(feats).float(), dim=-1).cpu()
        names = pl_module.class_names
        rows = []
        for j, i in enumerate(idx):
            true, pred = names[int(dataset.targets[i])], names[int(probs[j].argmax())]
            caption = f"true {true} / predicted {pred}"
            rows.append([trainer.current_epoch, int(i), true, pred, float(probs[j].max()),
                         wandb.Audio(waves[j].cpu().numpy(), sample_rate=dm.sample_rate, caption=caption),
                         wandb.Image(spectrogram_rgb(feats[j]), caption=caption)])
        logger.log_table("val/examples", columns=["epoch", "clip", "true", "predicted", "probability", "audio", "features"],
                         data=rows, step=trainer.global_step)


def log_test_figures(logger, confusion, class_names: list[str]) -> None:
    """Log the test confusion matrix (W&B's chart) and the per-class table to a
    :class:`~lightning.pytorch.loggers.WandbLogger` (called after the run is scored).

    Args:
        confusion: ``[n_classes, n_classes]`` counts, rows true class.
    """
    import wandb

    cm = np.asarray(confusion, dtype=np.int64)
    y_true = np.repeat(np.arange(len(cm)), cm.sum(axis=1))
    preds = np.concatenate([np.repeat(np.arange(len(cm)), row) for row in cm])
    names = list(class_names)
    logger.experiment.log({"test/confusion_matrix": wandb.plot.confusion_matrix(
        y_true=y_true.tolist(), preds=preds.tolist(), class_names=names, title="test confusion matrix")})
    table = per_class_metrics(cm, names)
    logger.log_table("test/per_class", columns=list(table[0]), data=[list(r.values()) for r in table])
