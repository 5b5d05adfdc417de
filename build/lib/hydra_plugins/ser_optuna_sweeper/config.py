"""Config schema of the ``ser_optuna`` sweeper, registered in Hydra's ConfigStore.

Hydra imports every module under ``hydra_plugins`` at start-up, so this module only
imports Hydra; optuna is imported when a sweep starts.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class SEROptunaSweeperConf:
    """Settings of ``hydra/sweeper: ser_optuna``.

    params: search space, ``key: <Hydra sweep expression>``: ``choice(a, b)``
        (categorical), ``interval(lo, hi)`` (uniform floats), ``int(interval(lo, hi))``
        (uniform integers), ``tag(log, interval(lo, hi))`` (log-uniform), ``range(a, b[, step])``
        (integers). A plain value fixes the key. Sweep overrides on the command line
        (``model.optimizer.lr='interval(1e-4,1e-2)'``) are added to the space.
    """

    _target_: str = "hydra_plugins.ser_optuna_sweeper.sweeper.SEROptunaSweeper"
    # maximize | minimize the value train.py returns (cfg.optimized_metric)
    direction: str = "maximize"
    study_name: Optional[str] = None
    # null: in memory; e.g. sqlite:///${hydra.sweep.dir}/study.db to keep and resume a study
    storage: Optional[str] = None
    n_trials: int = 20
    # trials launched together (the launcher runs them; joblib runs them in parallel)
    n_jobs: int = 1
    # tpe | random
    sampler: str = "tpe"
    # seed of the sampler: the same seed proposes the same trials
    seed: Optional[int] = 0
    # TPE: random trials before the model-based proposals start
    n_startup_trials: int = 10
    params: Dict[str, Any] = field(default_factory=dict)


ConfigStore.instance().store(group="hydra/sweeper", name="ser_optuna", node=SEROptunaSweeperConf, provider="ser_lightning")
