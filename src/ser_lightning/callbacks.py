"""Small Lightning callbacks of the project."""

from __future__ import annotations

import time

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
