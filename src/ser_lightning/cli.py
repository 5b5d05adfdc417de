"""What train.py and predict.py run, with user-facing error handling.

Errors a user can fix (missing data, unknown label, bad config value, bad checkpoint)
end the command with one clear message and exit code 2, not a traceback.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import sys
from pathlib import Path

from omegaconf import DictConfig

from ser_lightning.data.corpora import CorpusNotFoundError, UnknownLabelError
from ser_lightning.data.datamodule import DataQualityError

log = logging.getLogger("ser_lightning")

#: Errors caused by the user's data or configuration, reported without a traceback.
USER_ERRORS = (CorpusNotFoundError, UnknownLabelError, DataQualityError, ValueError, FileNotFoundError)


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_train(cfg: DictConfig) -> float | None:
    """Run :func:`ser_lightning.training.train`; return ``cfg.optimized_metric``.

    In a multirun, a job failing on a user error is logged and returns NaN so the sweep
    goes on. Any other exception is logged with its traceback into the job's log and
    re-raised: Hydra's launcher records the job as failed and runs the other jobs, then
    the sweep ends with that error (exit code 1); the Optuna sweeper counts the trial as
    failed and goes on.
    """
    from ser_lightning.training import train

    try:
        metrics = train(cfg)
    except USER_ERRORS as exc:
        log.error("%s: %s", type(exc).__name__, exc)
        if _is_multirun():
            return math.nan
        sys.exit(2)
    except Exception:
        if _is_multirun():
            log.exception("job failed (the other jobs of the sweep still run)")
        raise
    value = metrics.get(cfg.get("optimized_metric"))
    return float(value) if value is not None else None


def write_predictions(predictions, class_names: list[str], path: str | Path) -> None:
    """Write one row per input: path, label, confidence, error, one column per class.

    Raises:
        ValueError: ``path`` does not end in ``.csv`` or ``.json``.
    """
    path = Path(path)
    rows = []
    for p in predictions:
        row = {"path": p.source, "label": p.label, "confidence": p.confidence}
        row.update({c: p.probabilities.get(c) for c in class_names})
        row["error"] = p.error
        rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(rows, indent=2))
    elif path.suffix.lower() == ".csv":
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["path", "label", "confidence", *class_names, "error"])
            writer.writeheader()
            writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    else:
        raise ValueError(f"output={path}: use a .csv or .json file name")


def run_predict(cfg: DictConfig) -> int:
    """Predict every input file; print a table; write ``cfg.output``. Returns the exit
    code: 0 when all files were predicted, 1 when some failed, 2 on a usage error."""
    from ser_lightning.inference import CheckpointError, Predictor, expand_inputs

    try:
        if cfg.output and Path(str(cfg.output)).suffix.lower() not in (".csv", ".json"):
            raise ValueError(f"output={cfg.output}: use a .csv or .json file name")
        predictor = Predictor.from_checkpoint(cfg.ckpt_path, device=cfg.get("device"), hop_seconds=cfg.get("hop_seconds"))
        files = expand_inputs(cfg.input)
    except (CheckpointError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    predictions = predictor.predict(files, batch_size=cfg.batch_size)
    width = max(len(p.source) for p in predictions)
    for p in predictions:
        if p.error:
            print(f"{p.source:<{width}}  ERROR  {p.error}")
        else:
            print(f"{p.source:<{width}}  {p.label:<10} {p.confidence:6.1%}")
    if cfg.output:
        write_predictions(predictions, predictor.class_names, cfg.output)
        print(f"wrote {len(predictions)} rows to {cfg.output}")
    failed = sum(p.error is not None for p in predictions)
    if failed:
        print(f"{failed} of {len(predictions)} inputs could not be predicted", file=sys.stderr)
    return 1 if failed else 0


def run_eval(cfg: DictConfig) -> int:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.data``; print the label mapping and WAR / UAR
    / macro-F1; write the report into the run directory. Returns the exit code: 0, or 2
    on a user error (bad checkpoint, missing corpus, unmappable labels)."""
    from omegaconf import OmegaConf

    from ser_lightning.cross_corpus import evaluate_checkpoint
    from ser_lightning.inference import CheckpointError
    from ser_lightning.training import format_table

    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    output_dir = Path(cfg.paths.output_dir)
    try:
        report = evaluate_checkpoint(cfg.ckpt_path, data_cfg, part=cfg.part, unknown_labels=cfg.unknown_labels,
                                     label_map=OmegaConf.to_container(cfg.label_map) if cfg.label_map else None,
                                     batch_size=cfg.batch_size, device=cfg.get("device"), output_dir=output_dir)
    except (CheckpointError, *USER_ERRORS) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"\n{report['checkpoint']} on {report['corpus']} ({report['part']}): {report['n_evaluated']} of "
          f"{report['n_files']} files evaluated; model classes {', '.join(report['model_classes'])}")
    for src, dst in report["mapped"].items():
        print(f"  mapped    {src} -> {dst}")
    for label, n in report["dropped"].items():
        print(f"  dropped   {label}: {n} files (no such class in the model; unknown_labels={report['unknown_labels']})")
    if report["absent"]:
        print(f"  absent    {', '.join(report['absent'])} (model classes with no file here; predicting them counts as an error)")
    if report["skipped_files"]:
        print(f"  skipped   {len(report['skipped_files'])} files that cannot be decoded (listed in metrics.json)")
    metrics = {k.replace("eval/", "test/"): v for k, v in report.items() if k.startswith("eval/")}
    print(format_table(metrics, f"cross-corpus test on {report['corpus']}") + f"\nreport: {output_dir / 'metrics.json'}\n")
    return 0
