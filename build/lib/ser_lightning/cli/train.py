"""What train.py runs: :func:`ser_lightning.training.pipeline.train` with user-facing
error handling (one message and exit code 2 for an error the user can fix)."""

from __future__ import annotations

import math
import sys

from omegaconf import DictConfig

from ser_lightning.cli.common import log, user_error


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_train(cfg: DictConfig) -> float | None:
    """Run :func:`ser_lightning.training.pipeline.train`; return ``cfg.optimized_metric``.

    A user error (:class:`~ser_lightning.errors.SERUserError`) is logged as one line and
    ends the command with exit code 2; in a multirun, a job failing on one is logged and returns NaN so the sweep
    goes on. Any other exception is logged with its traceback into the job's log and
    re-raised: Hydra's launcher records the job as failed and runs the other jobs, then
    the sweep ends with that error (exit code 1); the Optuna sweeper counts the trial as
    failed and goes on.
    """
    from ser_lightning.training.pipeline import train

    try:
        metrics = train(cfg)
    except Exception as exc:
        err = user_error(exc)
        if err is not None:
            log.error("%s: %s", type(err).__name__, err)
            if _is_multirun():
                return math.nan
            sys.exit(2)
        if _is_multirun():
            log.exception("job failed (the other jobs of the sweep still run)")
        raise
    value = metrics.get(cfg.get("optimized_metric"))
    return float(value) if value is not None else None
