"""Small Lightning callbacks of the project."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn

from ser_lightning.errors import ConfigError


class EpochTimer(L.Callback):
    """Log the wall time of each training epoch as ``time/epoch_seconds`` (validation
    excluded) and keep the list in :attr:`seconds` for the run's ``metrics.json``.

    It shows that epochs after the first do not decode audio: with the waveform cache,
    their time is the model's time alone.
    """

    def __init__(self):
        self.seconds: list[float] = []
        self._start = 0.0
        self._val_start = 0.0
        self._val_seconds = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()
        self._val_seconds = 0.0

    # Lightning runs the epoch-end validation inside the training epoch (before
    # on_train_epoch_end), so its time is measured and taken out.
    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._val_start = time.perf_counter()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._val_seconds += time.perf_counter() - self._val_start

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        elapsed = time.perf_counter() - self._start - self._val_seconds
        self.seconds.append(elapsed)
        pl_module.log("time/epoch_seconds", elapsed, on_epoch=True, prog_bar=False)


class DataWaitTimer(L.Callback):
    """Share of each training epoch spent waiting for data, logged as
    ``time/data_wait_fraction`` (a fraction in [0, 1]).

    The wait is the time from the end of one training batch (``on_train_batch_end``),
    or from the start of the epoch, to the start of the next
    (``on_train_batch_start``): the DataLoader's next batch, its copy to the device and
    the device-side augmentation and features (``on_after_batch_transfer``). The step
    is the time from ``on_train_batch_start`` to ``on_train_batch_end``: forward,
    backward and optimizer. Validation is outside both. On a GPU the step's kernels run
    asynchronously, so the split between the two is only meaningful on the CPU or with
    ``CUDA_LAUNCH_BLOCKING=1``; their sum is exact either way.

    Attributes:
        wait_seconds, step_seconds: per finished epoch, in seconds.
    """

    def __init__(self):
        self.wait_seconds: list[float] = []
        self.step_seconds: list[float] = []
        self._mark = 0.0
        self._wait = 0.0
        self._step = 0.0

    @property
    def fractions(self) -> list[float]:
        """Per finished epoch: wait / (wait + step)."""
        return [w / (w + s) if w + s > 0 else 0.0 for w, s in zip(self.wait_seconds, self.step_seconds, strict=True)]

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._wait = self._step = 0.0
        self._mark = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = time.perf_counter()
        self._wait += now - self._mark
        self._mark = now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        self._step += now - self._mark
        self._mark = now

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._mark = time.perf_counter()  # a mid-epoch validation is neither wait nor step

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.wait_seconds.append(self._wait)
        self.step_seconds.append(self._step)
        pl_module.log("time/data_wait_fraction", self.fractions[-1], on_epoch=True, prog_bar=False)


class ChannelsLast(L.Callback):
    """Store the model's 4-D (2-D convolution) weights channels-last (NHWC) before
    training, so the convolutions run in that layout.

    Measured on this project's CPU: a cnn2d training step 1.8x faster
    (``bench/model_step.py``, docs/PERFORMANCE.md). Models without 4-D weights (cnn1d)
    are unchanged. Only applied on the device types in ``device_types`` (default: CPU,
    where it was measured); checkpoints hold the same values either way.

    Args:
        device_types: ``torch.device.type`` values to apply it on, e.g. ``["cpu", "cuda"]``.
    """

    def __init__(self, device_types: list[str] | tuple[str, ...] = ("cpu",)):
        self.device_types = tuple(device_types)

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit" and trainer.strategy.root_device.type in self.device_types:
            pl_module.to(memory_format=torch.channels_last)


class MetricsHistory(L.Callback):
    """Keep one row per training epoch (learning rate at the epoch start, the epoch's
    train/val loss, WAR, UAR, macro-F1) and write ``history.csv`` and
    ``training_curves.png`` into ``dirpath`` when fitting ends.

    The rows are part of the callback's checkpoint state, so a resumed run keeps the
    curves of the epochs before the interruption. Only rank 0 writes files.

    Args:
        dirpath: the run directory.
    """

    def __init__(self, dirpath: str):
        self.dirpath = dirpath
        self.rows: list[dict[str, float]] = []
        self._pending: dict[str, float] | None = None

    def _finish_row(self, trainer) -> None:
        if self._pending is None:
            return
        scalars = {k: float(v) for k, v in trainer.callback_metrics.items()
                   if k.startswith(("train/", "val/")) and k != "train/loss_step" and getattr(v, "numel", lambda: 1)() == 1}
        if scalars:  # empty right after a restart: that epoch's metrics are gone
            self.rows.append({**self._pending, **scalars})
        self._pending = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._finish_row(trainer)
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        self._pending = {"epoch": trainer.current_epoch, "lr": float(lr)}

    def on_validation_end(self, trainer, pl_module) -> None:
        # Validation metrics of this epoch, kept so a checkpoint saved now holds them.
        if self._pending is not None and not trainer.sanity_checking:
            self._pending.update({k: float(v) for k, v in trainer.callback_metrics.items()
                                  if k.startswith("val/") and getattr(v, "numel", lambda: 1)() == 1})

    def on_fit_end(self, trainer, pl_module) -> None:
        self._finish_row(trainer)
        if trainer.is_global_zero and self.rows:
            from ser_lightning.plots import plot_training_curves, write_history_csv

            write_history_csv(self.rows, Path(self.dirpath) / "history.csv")
            plot_training_curves(self.rows, Path(self.dirpath) / "training_curves.png")

    def state_dict(self) -> dict:
        # The epoch being checkpointed is still pending (its train metrics come later);
        # a run resumed from this checkpoint keeps it with its learning rate and val scores.
        return {"rows": self.rows + ([dict(self._pending)] if self._pending else [])}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rows = list(state_dict.get("rows", []))


class EMAWeights(EMAWeightAveraging):
    """Exponential moving average (EMA) of the weights, used for validation, saved in
    the checkpoints and therefore tested and deployed in place of the raw weights.

    After each optimizer step, ``avg = decay * avg + (1 - decay) * weights`` (Polyak
    averaging; Polyak & Juditsky, 1992), batch-norm statistics included. With ``decay``
    0.995 the average spans about ``1 / (1 - decay)`` = 200 steps: 9 epochs of RAVDESS's
    720 training clips in batches of 32. Averaging smooths the epoch-to-epoch noise
    of a small training set, so the best-validation checkpoint is chosen among steadier
    weights.

    This is Lightning's :class:`~lightning.pytorch.callbacks.EMAWeightAveraging` with one
    fix. Its checkpoints hold the average in ``state_dict`` and the raw weights in
    ``current_model_state``; when a checkpoint is loaded while its averaged model
    exists, it restores the raw weights. That model still exists after ``fit``, so
    ``trainer.test(ckpt_path="best")`` in the same run would score the raw weights of
    the best epoch, not the averaged weights validation chose. Here only a resumed fit
    restores the raw weights; any other load keeps the checkpoint's averaged
    ``state_dict``.

    Args:
        decay: weight of the old average at each update, in ``[0, 1)``.

    Raises:
        ValueError: ``decay`` outside ``[0, 1)``.
    """

    def __init__(self, decay: float = 0.995):
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"EMA decay must be in [0, 1), got {decay}")
        super().__init__(decay=decay)
        self.decay = decay

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
        # Otherwise (test, validate, predict) the model already holds the checkpoint's
        # state_dict: the averaged weights.
