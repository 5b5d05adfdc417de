"""What eval.py runs: score a checkpoint (or an ensemble) on a corpus and print the report."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from ser_lightning.cli.common import checkpoint_paths, released_setup_hint
from ser_lightning.errors import SERUserError


def run_eval(cfg: DictConfig) -> int:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.data``; print the label mapping and WAR / UAR
    / macro-F1; write the report into the run directory. Returns the exit code: 0, or 2
    on a user error (bad checkpoint, missing corpus, unmappable labels)."""
    from omegaconf import OmegaConf

    from ser_lightning.evaluation.evaluate import evaluate_checkpoint
    from ser_lightning.metrics import format_table

    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    output_dir = Path(cfg.paths.output_dir)
    try:
        report = evaluate_checkpoint(checkpoint_paths(cfg.get("ckpt_path")), data_cfg, part=cfg.part, unknown_labels=cfg.unknown_labels,
                                     label_map=OmegaConf.to_container(cfg.label_map) if cfg.label_map else None,
                                     batch_size=cfg.batch_size, device=cfg.get("device"), output_dir=output_dir,
                                     scoring=str(cfg.get("scoring", "windows")), test_stats=str(cfg.get("test_stats", "training")),
                                     report_stats=list(cfg.get("report_stats") or []) or None, enrol_seed=int(cfg.get("enrol_seed", 0)),
                                     calibration=str(cfg.get("calibration") or "checkpoint"), temperature=cfg.get("temperature"),
                                     classes=str(cfg.get("classes") or "target"),
                                     adapt=str(cfg.get("adapt") or "none"), adapt_scope=str(cfg.get("adapt_scope") or "speaker"))
    except SERUserError as exc:
        print(f"error: {released_setup_hint(exc, cfg.get('ckpt_path'))}", file=sys.stderr)
        return 2
    print(f"\n{report['checkpoint']} on {report['corpus']} ({report['part']}): {report['n_evaluated']} of "
          f"{report['n_files']} files evaluated; model classes {', '.join(report['model_classes'])}")
    for src, dst in report["mapped"].items():
        print(f"  mapped    {src} -> {dst}")
    for label, n in report["dropped"].items():
        print(f"  dropped   {label}: {n} files (no such class in the model; unknown_labels={report['unknown_labels']})")
    if report["absent"]:
        what = ("cannot be predicted: classes=target" if report["classes"] == "target"
                else "predicting them counts as an error; classes=target leaves them out")
        print(f"  absent    {', '.join(report['absent'])} (model classes with no file here; {what})")
    if report["skipped_files"]:
        print(f"  skipped   {len(report['skipped_files'])} files that cannot be decoded (listed in metrics.json)")
    metrics = {k.replace("eval/", "test/"): v for k, v in report.items() if k.startswith("eval/")}
    cal = report["calibration"]
    print(f"  calibration: T = {cal['temperature']:.3g}; ECE {100 * cal['before']['ece']:.1f} % at T = 1, "
          f"{100 * cal['after']['ece']:.1f} % at T = {cal['temperature']:.3g} (15 bins, top label)")
    others = [f"{m} {100 * r['uar']:.1f}" for m, r in report["eval_by_stats"].items() if m != report["test_stats"]]
    note = f"scoring={report['scoring']}, test-time statistics: {report['test_stats']}, classes={report['classes']}"
    note += f" (UAR % under the other statistics: {', '.join(others)})" if others else ""
    unrestricted, restricted = report["eval_by_classes"]["all"], report["eval_by_classes"]["target"]
    if report["absent"]:
        note += (f"\nUAR % with the arg-max over the target's {len(report['target_classes'])} classes: {100 * restricted['uar']:.1f}; "
                 f"over all {len(report['model_classes'])} model classes: {100 * unrestricted['uar']:.1f}")
    print(format_table(metrics, f"test on {report['corpus']} ({report['part']})") + f"\n{note}\nreport: {output_dir / 'metrics.json'}\n")
    return 0
