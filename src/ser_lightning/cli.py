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


def _write_rows(rows: list[dict], fieldnames: list[str], path: Path) -> None:
    """Rows -> ``path`` as CSV (empty cell for ``None``) or JSON (``null``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(rows, indent=2))
    elif path.suffix.lower() == ".csv":
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    else:
        raise ValueError(f"{path}: use a .csv or .json file name")


def write_predictions(predictions, class_names: list[str], path: str | Path) -> None:
    """Write one row per input: path, label, confidence, one column per class (the
    probabilities), duration_seconds, windows, silent_windows, note, error.

    Raises:
        ValueError: ``path`` does not end in ``.csv`` or ``.json``.
    """
    from ser_lightning.inference import SILENCE

    fieldnames = ["path", "label", "confidence", *class_names, "duration_seconds", "windows", "silent_windows", "note", "error"]
    rows = []
    for p in predictions:
        row = {"path": p.source, "label": p.label, "confidence": p.confidence}
        row.update({c: p.probabilities.get(c) for c in class_names})
        row.update(duration_seconds=p.duration, windows=len(p.windows),
                   silent_windows=sum(w.label == SILENCE for w in p.windows), note=p.note, error=p.error)
        rows.append(row)
    _write_rows(rows, fieldnames, Path(path))


def write_timeline(predictions, class_names: list[str], path: str | Path) -> int:
    """Write the timeline of every predicted input: one row per window with path,
    start and end (seconds), label (a class or ``silence``), confidence, energy_dbfs
    and one probability column per class (empty for silent windows). Returns the
    number of rows.

    Raises:
        ValueError: ``path`` does not end in ``.csv`` or ``.json``.
    """
    fieldnames = ["path", "start", "end", "label", "confidence", "energy_dbfs", *class_names]
    rows = []
    for p in predictions:
        for w in p.windows:
            row = {"path": p.source, "start": round(w.start, 4), "end": round(w.end, 4), "label": w.label,
                   "confidence": w.confidence, "energy_dbfs": round(w.energy_dbfs, 2)}
            row.update({c: w.probabilities.get(c) for c in class_names})
            rows.append(row)
    _write_rows(rows, fieldnames, Path(path))
    return len(rows)


def _plot_paths(predictions, plot_dir: Path) -> dict[int, Path]:
    """One PNG name per input with more than one window (``<stem>.png``, numbered on clashes)."""
    names: dict[int, Path] = {}
    used: set[str] = set()
    for i, p in enumerate(predictions):
        if len(p.windows) > 1:
            stem = Path(p.source).stem or f"input_{i}"
            name, k = f"{stem}.png", 1
            while name in used:
                k += 1
                name = f"{stem}_{k}.png"
            used.add(name)
            names[i] = plot_dir / name
    return names


def print_table(predictions) -> None:
    """One line per input: path, label, confidence, duration, windows, note or error."""
    if not predictions:
        return
    width = min(max(len(p.source) for p in predictions), 80)
    print(f"{'input':<{width}}  {'label':<10} {'conf':>6} {'seconds':>8} {'windows':>7}  note")
    for p in predictions:
        source = p.source if len(p.source) <= width else "..." + p.source[-(width - 3):]
        if p.error:
            reason = p.error[len(p.source) + 2:] if p.error.startswith(p.source + ": ") else p.error
            print(f"{source:<{width}}  {'ERROR':<10} {'':>6} {'':>8} {'':>7}  {reason}")
            continue
        conf = f"{p.confidence:6.1%}" if p.confidence is not None else f"{'':>6}"
        print(f"{source:<{width}}  {p.label:<10} {conf} {p.duration:8.2f} {len(p.windows):7d}  {p.note or ''}")


def checkpoint_paths(ckpt_path) -> str | list[str]:
    """``ckpt_path`` from the command line: one path, or a list of them
    (``ckpt_path=[a.ckpt,b.ckpt]``, an ensemble) as a plain list of strings."""
    from omegaconf import OmegaConf

    if OmegaConf.is_list(ckpt_path) or isinstance(ckpt_path, (list, tuple)):
        return [str(p) for p in ckpt_path]
    return str(ckpt_path)


def run_predict(cfg: DictConfig) -> int:
    """Predict every input; print a table; write ``cfg.output``, ``cfg.timeline`` and
    the ``cfg.plot_dir`` PNGs. Returns the exit code: 0 when all inputs were predicted
    (silence, and ``uncertain`` below ``cfg.min_confidence``, count as predictions), 1
    when some could not be, 2 on a usage error (bad checkpoint, no input, bad option)."""
    from ser_lightning.abstention import abstention_summary, apply_min_confidence, check_min_confidence
    from ser_lightning.inference import CheckpointError, Predictor, expand_inputs

    try:
        min_confidence = check_min_confidence(cfg.get("min_confidence"))
        for key in ("output", "timeline"):
            if cfg.get(key) and Path(str(cfg[key])).suffix.lower() not in (".csv", ".json"):
                raise ValueError(f"{key}={cfg[key]}: use a .csv or .json file name")
        speaker_stats = str(cfg.get("speaker_stats") or "auto")
        if speaker_stats == "auto":
            speaker_stats = "enrol" if cfg.get("enrol") else "training"
        if cfg.get("enrol") and speaker_stats != "enrol":
            raise ValueError(f"enrol= is given but speaker_stats={speaker_stats}: use speaker_stats=enrol (or auto)")
        predictor = Predictor.from_checkpoint(
            checkpoint_paths(cfg.ckpt_path), device=cfg.get("device"), hop_seconds=cfg.get("hop_seconds"),
            window_seconds=cfg.get("window_seconds"), silence_dbfs=cfg.get("silence_dbfs"), min_seconds=cfg.get("min_seconds"),
            speaker_stats=speaker_stats, scoring=str(cfg.get("scoring") or "windows"),
            calibration=str(cfg.get("calibration") or "checkpoint"), temperature=cfg.get("temperature"))
        files = expand_inputs(cfg.input)
        if speaker_stats == "enrol" and predictor.speaker_normalized:
            enrol_files = expand_inputs(cfg.enrol) if cfg.get("enrol") else []
            if not enrol_files:
                raise ValueError("speaker_stats=enrol needs enrol=<files, folder or glob of the speaker's recordings>")
            for problem in predictor.enrol(enrol_files):
                print(f"warning: enrolment recording left out: {problem}", file=sys.stderr)
            print(f"speaker statistics from {len(enrol_files)} enrolment recording(s)", file=sys.stderr)
    except (CheckpointError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if cfg.get("num_threads"):
        import torch

        torch.set_num_threads(int(cfg.num_threads))
    try:
        if cfg.get("segmenter", "windows") == "vad":  # one timeline row per speech segment (ser_lightning.live)
            from ser_lightning.live import predict_segments
            from ser_lightning.vad import build_vad

            predictions = predict_segments(predictor, files, build_vad(cfg.get("vad", "silero"), **dict(cfg.get("vad_settings") or {})))
        else:
            predictions = predictor.predict(files, batch_size=cfg.batch_size, progress=bool(cfg.get("progress", True)))
    except ValueError as exc:  # SpeakerGroupingError (folders named after emotions), a VAD that cannot run
        print(f"error: {exc}", file=sys.stderr)
        return 2
    predictions = apply_min_confidence(predictions, min_confidence)
    print_table(predictions)
    if min_confidence is not None:
        print(abstention_summary(predictions, min_confidence))
    if cfg.output:
        write_predictions(predictions, predictor.class_names, cfg.output)
        print(f"wrote {len(predictions)} rows to {cfg.output}")
    if cfg.get("timeline"):
        n = write_timeline(predictions, predictor.class_names, cfg.timeline)
        print(f"wrote {n} timeline rows to {cfg.timeline}")
    if cfg.get("plot_dir"):
        from ser_lightning.plots import plot_timeline

        for i, png in _plot_paths(predictions, Path(str(cfg.plot_dir))).items():
            png.parent.mkdir(parents=True, exist_ok=True)
            plot_timeline(predictions[i], predictor.class_names, png)
            print(f"wrote {png}")
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
        report = evaluate_checkpoint(checkpoint_paths(cfg.ckpt_path), data_cfg, part=cfg.part, unknown_labels=cfg.unknown_labels,
                                     label_map=OmegaConf.to_container(cfg.label_map) if cfg.label_map else None,
                                     batch_size=cfg.batch_size, device=cfg.get("device"), output_dir=output_dir,
                                     scoring=str(cfg.get("scoring", "windows")), test_stats=str(cfg.get("test_stats", "training")),
                                     report_stats=list(cfg.get("report_stats") or []) or None, enrol_seed=int(cfg.get("enrol_seed", 0)),
                                     calibration=str(cfg.get("calibration") or "checkpoint"), temperature=cfg.get("temperature"))
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
    cal = report["calibration"]
    print(f"  calibration: T = {cal['temperature']:.3g}; ECE {100 * cal['before']['ece']:.1f} % at T = 1, "
          f"{100 * cal['after']['ece']:.1f} % at T = {cal['temperature']:.3g} (15 bins, top label)")
    others = [f"{m} {100 * r['uar']:.1f}" for m, r in report["eval_by_stats"].items() if m != report["test_stats"]]
    note = f"scoring={report['scoring']}, test-time statistics: {report['test_stats']}"
    note += f" (UAR % under the other statistics: {', '.join(others)})" if others else ""
    print(format_table(metrics, f"test on {report['corpus']} ({report['part']})") + f"\n{note}\nreport: {output_dir / 'metrics.json'}\n")
    return 0


def run_export(cfg: DictConfig) -> int:
    """Export ``cfg.ckpt_path`` as ``cfg.format``; print what was written. Returns the
    exit code: 0 on success, 1 when the export failed or disagrees with PyTorch, 2 on a
    usage error (bad checkpoint, unknown format)."""
    from ser_lightning.export import ExportError, export_checkpoint
    from ser_lightning.inference import CheckpointError

    if isinstance(checkpoint_paths(cfg.ckpt_path), list):
        print("error: export takes one checkpoint (ckpt_path=<file>), not a list (an ensemble)", file=sys.stderr)
        return 2
    try:
        result = export_checkpoint(cfg.ckpt_path, str(cfg.format), cfg.get("output"), atol=float(cfg.get("atol", 1e-4)))
    except (CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    meta = result.metadata
    print(f"wrote {result.path} ({result.format}); max |exported - PyTorch| probability on the check inputs: {result.max_abs_diff:.1e}")
    print(f"input:  waveform [batch, samples] float32, mono, {meta['sample_rate']} Hz (model clip: {meta['clip_seconds']} s)")
    print(f"output: probabilities [batch, {len(meta['class_names'])}] in the order {meta['class_names']}")
    return 0
