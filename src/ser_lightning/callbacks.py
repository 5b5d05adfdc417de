"""Small Lightning callbacks of the project."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L


class EpochTimer(L.Callback):
    """Log the wall time of each training epoch as ``time/epoch_seconds`` (validation
    excluded) and keep the list in :attr:`seconds` for the run's ``metrics.json``.

    It shows that epochs after the first do not decode audio: with the waveform cache,
    their time is the model's time alone.
    """

    def __init__(self):
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        elapsed = time.perf_counter() - self._start
        self.seconds.append(elapsed)
        pl_module.log("time/epoch_seconds", elapsed, on_epoch=True, prog_bar=False)


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
