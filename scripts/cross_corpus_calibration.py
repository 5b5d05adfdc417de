"""Calibration across corpora: do the temperatures fitted on a corpus's validation speakers
carry over to another corpus? Writes docs/CROSS_CORPUS_CALIBRATION.md.

    python scripts/cross_corpus_calibration.py --runs 'outputs/results/ravdess_kfold/<recipe>/fold*' \
        --targets savee,tess [--out docs/CROSS_CORPUS_CALIBRATION.md]

Each run's best checkpoint (the path its metrics.json records, with the temperature fitted
on its validation part) is scored on every file of each target corpus through
``eval.py``'s code (:func:`ser_lightning.evaluation.evaluate.evaluate_checkpoint`: windows,
the test-time statistics the run was reported with, labels mapped onto the model's
classes), and the ECE of the target's files is given at T = 1 and at the fitted T, with
the floor a perfectly calibrated model would show on as many files.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
from pathlib import Path

from ser_lightning.evaluation.calibration import ece_from_bins, ece_noise_floor, pooled_bins
from ser_lightning.evaluation.evaluate import evaluate_checkpoint

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", required=True, help="glob of train.py run directories (the folds of one recipe)")
    parser.add_argument("--targets", default="savee,tess", help="comma-separated corpora to evaluate on (conf/data names)")
    parser.add_argument("--data-dir", default=os.environ.get("SER_DATA_DIR", str(REPO / "data")))
    parser.add_argument("--out", default=str(REPO / "docs" / "CROSS_CORPUS_CALIBRATION.md"))
    args = parser.parse_args(argv)
    runs = sorted(Path(p) for p in glob.glob(args.runs) if (Path(p) / "metrics.json").is_file())
    if not runs:
        raise SystemExit(f"no finished run matches {args.runs}")
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    rows, own = [], []
    for target in [t for t in args.targets.split(",") if t]:
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            data_cfg = OmegaConf.to_container(compose("eval", overrides=[f"data={target}", f"paths.data_dir={args.data_dir}"]).data, resolve=True)
        before, after, uar, temps = [], [], [], []
        for run in runs:
            metrics = json.loads((run / "metrics.json").read_text())
            report = evaluate_checkpoint(run / metrics["best_checkpoint"], data_cfg, part="all", test_stats=metrics["test_stats"],
                                         report_stats=[metrics["test_stats"]] if metrics["test_stats"] != "utterance" else None,
                                         device="cpu")
            before.append(report["calibration"]["before"]["bins"])
            after.append(report["calibration"]["after"]["bins"])
            uar.append(report["eval/uar"])
            temps.append(report["calibration"]["temperature"])
            print(f"{run.name} on {target}: UAR {100 * report['eval/uar']:.1f} %, T = {temps[-1]:.2f}, ECE "
                  f"{100 * report['calibration']['before']['ece']:.1f} -> {100 * report['calibration']['after']['ece']:.1f} %", flush=True)
        b, a = pooled_bins(before), pooled_bins(after)
        rows.append((target, statistics.fmean(uar), temps, ece_from_bins(b), ece_from_bins(a), ece_noise_floor(a), sum(x["count"] for x in a)))
    for run in runs:  # the same runs on their own test speakers, for comparison
        own.append(json.loads((run / "metrics.json").read_text())["calibration"]["test"])
    own_b, own_a = pooled_bins([c["before"]["bins"] for c in own]), pooled_bins([c["after"]["bins"] for c in own])
    source = json.loads((runs[0] / "metrics.json").read_text())
    lines = [
        "# Calibration across corpora",
        "",
        "Written by `python scripts/cross_corpus_calibration.py " + " ".join(a if " " not in a else repr(a) for a in (argv or sys.argv[1:])) + "`.",
        "",
        f"Models: the {len(runs)} runs `{args.runs}` (test-time statistics `{source['test_stats']}`, scoring "
        f"`{source['scoring']}`); each carries the temperature fitted on its own validation speakers. Every file of the "
        "target corpus is scored by `eval.py`'s code (labels matched to the model's classes by name, `unknown_labels=map`; a "
        "model class the target lacks, such as RAVDESS's `calm`, can still be predicted and counts as an error). "
        "ECE: top-label, 15 equal-width bins, all the runs' files together; floor: the ECE a perfectly calibrated model "
        "would show with the same confidences on as many files.",
        "",
        "| evaluated on | files (all runs) | mean UAR % | temperatures | ECE % at T = 1 | ECE % at the fitted T | floor % |",
        "|---|---|---|---|---|---|---|",
        f"| own test speakers (same corpus) | {sum(x['count'] for x in own_a)} | {100 * statistics.fmean(json.loads((r / 'metrics.json').read_text())['test/uar'] for r in runs):.1f} | "
        f"{', '.join(f'{t:.2f}' for t in temps)} | {100 * ece_from_bins(own_b):.1f} | {100 * ece_from_bins(own_a):.1f} | {100 * ece_noise_floor(own_a):.1f} |",
    ]
    for target, mean_uar, ts, eb, ea, floor, n in rows:
        lines.append(f"| {target} (all files) | {n} | {100 * mean_uar:.1f} | {', '.join(f'{t:.2f}' for t in ts)} | {100 * eb:.1f} | {100 * ea:.1f} | {100 * floor:.1f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
