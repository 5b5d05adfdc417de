"""The ``ser_optuna`` Hydra sweeper: ask Optuna for trials, launch them as Hydra jobs,
tell Optuna the value each job returned.

A failed job (an exception, or a NaN / missing return value) becomes a FAILED trial and
the study goes on. After every batch the sweep directory gets ``trials.csv`` (one row
per trial: number, job number, state, value, parameters, and seconds: the wall time of
its batch divided by the trials in the batch) and
``optimization_results.yaml`` (best value and parameters so far).
"""

from __future__ import annotations

import csv
import logging
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

_PRIMITIVE = (str, int, float, bool, type(None))


def to_distribution(override: Override):
    """An Optuna distribution for a Hydra sweep override.

    ``choice`` -> categorical (non-primitive choices, e.g. lists, are kept as their
    override strings); ``range`` of integers -> integer distribution with its step;
    ``interval`` -> float (Hydra parses its ends as floats), ``int(interval(...))`` ->
    integer; the ``log`` tag makes it log-uniform.

    Raises:
        ValueError: a sweep type with no Optuna counterpart (e.g. a float ``range``).
    """
    import optuna.distributions as od

    value = override.value()
    if isinstance(value, ChoiceSweep):
        choices = list(override.sweep_iterator())
        if not all(isinstance(c, _PRIMITIVE) for c in choices):
            # e.g. channel lists: Optuna stores primitives only, so the choice is the
            # override string ("[16,32,64,128]"), which Hydra parses back into a list.
            return od.CategoricalDistribution(list(override.sweep_string_iterator()))
        return od.CategoricalDistribution(choices)
    log_scale = "log" in value.tags
    if isinstance(value, RangeSweep):
        if all(isinstance(x, int) for x in (value.start, value.stop, value.step)) and value.step > 0:
            last = value.start + ((value.stop - 1 - value.start) // value.step) * value.step
            return od.IntDistribution(int(value.start), int(last), step=int(value.step), log=log_scale and value.step == 1)
        raise ValueError(f"{override.input_line}: only integer range() sweeps are supported; use interval() for floats")
    if isinstance(value, IntervalSweep):
        if isinstance(value.start, int) and isinstance(value.end, int):
            return od.IntDistribution(value.start, value.end, log=log_scale)
        return od.FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise ValueError(f"{override.input_line}: unsupported sweep for the Optuna sweeper")


def _flatten(params: Any, prefix: str = "") -> Dict[str, Any]:
    """``{"model": {"optimizer": {"lr": x}}}`` -> ``{"model.optimizer.lr": x}``: a
    command-line ``hydra.sweeper.params.model.optimizer.lr=...`` arrives nested."""
    flat: Dict[str, Any] = {}
    for key, value in (params.items() if hasattr(params, "items") else []):
        name = f"{prefix}{key}"
        if hasattr(value, "items"):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _as_override_value(value: Any) -> str:
    return Override._get_value_element_as_str(value)


class SEROptunaSweeper(Sweeper):
    """Hydra sweeper backed by an Optuna study; see :class:`SEROptunaSweeperConf`."""

    def __init__(self, direction: str, study_name: Optional[str], storage: Optional[str], n_trials: int, n_jobs: int,
                 sampler: str, seed: Optional[int], n_startup_trials: int, params: Optional[Dict[str, Any]] = None):
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"hydra.sweeper.direction='{direction}': allowed maximize, minimize")
        if sampler not in ("tpe", "random"):
            raise ValueError(f"hydra.sweeper.sampler='{sampler}': allowed tpe, random")
        if n_trials < 1 or n_jobs < 1:
            raise ValueError(f"hydra.sweeper.n_trials and n_jobs must be >= 1 (got {n_trials}, {n_jobs})")
        self.direction, self.study_name, self.storage = direction, study_name, storage
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.sampler_name, self.seed, self.n_startup_trials = sampler, seed, n_startup_trials
        self.params = _flatten(params or {})
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.launcher = None
        self._raw_keys: set[str] = set()

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def _sampler(self):
        import optuna

        if self.sampler_name == "random":
            return optuna.samplers.RandomSampler(seed=self.seed)
        return optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=self.n_startup_trials,
                                          constant_liar=self.n_jobs > 1)

    def _search_space(self, arguments: List[str]) -> tuple[dict, list[str]]:
        """``({name: distribution}, [fixed override strings])`` from ``params`` and the
        command line (the command line wins for a key in both)."""
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        lines = {}
        for line in [f"{k}={_as_override_value(v) if not isinstance(v, str) else v}" for k, v in self.params.items()] + list(arguments):
            lines[parser.parse_override(line).get_key_element()] = line
        space, fixed = {}, []
        for override in parser.parse_overrides(list(lines.values())):
            key = override.get_key_element()
            if override.is_sweep_override():
                space[key] = to_distribution(override)
                if isinstance(override.value(), ChoiceSweep) and not all(isinstance(c, _PRIMITIVE) for c in override.sweep_iterator()):
                    self._raw_keys.add(key)  # choices are override strings: send them unescaped
            else:
                fixed.append(f"{key}={override.get_value_element_as_str()}")
        if not space:
            raise ValueError("the Optuna sweeper needs a search space: set hydra.sweeper.params (see conf/hparams_search/optuna.yaml)")
        return space, fixed

    def sweep(self, arguments: List[str]) -> List[Sequence[Any]]:
        import optuna

        assert self.config is not None and self.launcher is not None
        space, fixed = self._search_space(arguments)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        study = optuna.create_study(study_name=self.study_name, storage=self.storage, sampler=self._sampler(),
                                    direction=self.direction, load_if_exists=self.storage is not None)
        log.info("Optuna study %s (%s, %s sampler, seed %s): %d trials over %s", study.study_name, self.direction,
                 self.sampler_name, self.seed, self.n_trials, ", ".join(f"{k}: {d}" for k, d in space.items()))
        job_of: dict[int, int] = {}
        seconds: dict[int, float] = {}
        returns: List[Sequence[Any]] = []
        job_idx, done = 0, 0
        while done < self.n_trials:
            n = min(self.n_jobs, self.n_trials - done)
            trials = [study.ask(space) for _ in range(n)]
            batch = [fixed + [f"{k}={v if k in self._raw_keys else _as_override_value(v)}" for k, v in t.params.items()]
                     for t in trials]
            self.validate_batch_is_legal(batch)
            tic = time.perf_counter()
            results = self.launcher.launch(batch, initial_job_idx=job_idx)
            for trial, result in zip(trials, results, strict=True):
                job_of[trial.number], seconds[trial.number] = job_idx, (time.perf_counter() - tic) / n
                self._tell(study, trial, result, job_idx)
                job_idx += 1
            done += n
            returns.append(results)
            self._write_results(study, sweep_dir, job_of, seconds)
        if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
            raise RuntimeError(f"all {len(study.trials)} Optuna trials failed; see the job logs in {sweep_dir}")
        log.info("best value %.4f with %s (trial %d); results in %s", study.best_value, study.best_params,
                 study.best_trial.number, sweep_dir / "optimization_results.yaml")
        return returns

    @staticmethod
    def _tell(study, trial, result, job_idx: int) -> None:
        from optuna.trial import TrialState

        if result.status == JobStatus.FAILED:
            exc = result._return_value
            log.warning("trial %d (job %d) failed: %s: %s; the study goes on", trial.number, job_idx, type(exc).__name__, exc)
            study.tell(trial, state=TrialState.FAIL)
            return
        value = result.return_value
        if value is None or (isinstance(value, float) and math.isnan(value)):
            log.warning("trial %d (job %d) returned %s (see its log); counted as failed", trial.number, job_idx, value)
            study.tell(trial, state=TrialState.FAIL)
            return
        study.tell(trial, float(value))

    def _write_results(self, study, sweep_dir: Path, job_of: dict, seconds: dict) -> None:
        from optuna.trial import TrialState

        names = list(dict.fromkeys(k for t in study.trials for k in t.params))
        with (sweep_dir / "trials.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["trial", "job", "state", "value", *names, "seconds"])
            for t in study.trials:
                writer.writerow([t.number, job_of.get(t.number, ""), t.state.name, "" if t.value is None else t.value,
                                 *[t.params.get(k, "") for k in names], f"{seconds.get(t.number, float('nan')):.1f}"])
        complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
        summary = {
            "name": study.study_name, "direction": self.direction, "sampler": self.sampler_name, "seed": self.seed,
            "n_trials": len(study.trials), "n_complete": len(complete),
            "n_failed": sum(t.state == TrialState.FAIL for t in study.trials),
        }
        if complete:
            best = study.best_trial
            summary.update(best_value=best.value, best_trial=best.number, best_job=job_of.get(best.number),
                           best_params=dict(best.params))
        OmegaConf.save(OmegaConf.create(summary), sweep_dir / "optimization_results.yaml")
