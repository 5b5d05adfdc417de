"""Gather a multirun directory into one results table: mean and std per configuration.

    python -m ser_lightning.evaluation.aggregate outputs/multirun/<date_time> [--collapse data.fold seed]

Each job folder holds Hydra's ``.hydra/overrides.yaml`` and, when the job finished,
``metrics.json``. Jobs are grouped by the overrides that differ between jobs, leaving
out the collapsed keys (default: ``data.fold`` and ``seed``, so the folds of a speaker
cross-validation and repeated seeds become one row). Per group: the number of finished
and failed jobs, mean and standard deviation (sample std, ``ddof=1``; empty for a
single job) of test UAR and WAR and of the best validation UAR, in %, and of the test
UAR under each test-time statistics mode a run was scored under (``test_by_stats``).

Writes ``summary.md``, ``summary.csv`` (one row per configuration) and ``jobs.csv``
(one row per job; scores in %) into the multirun directory, and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

DEFAULT_COLLAPSE = ("data.fold", "seed")
#: (column name, metrics.json key)
SCORES = (("test UAR", "test/uar"), ("test WAR", "test/war"), ("best val UAR", "best_val_uar"))

#: test-time statistics modes, in table order: where a speaker-normalised model takes a
#: test speaker's feature statistics from (all their test recordings; ``k`` label-blind
#: enrolment recordings, then not scored; the stored training statistics), and
#: ``utterance`` for a model normalising each utterance by itself (needs nothing)
MODES = ("transductive", "enrol4", "enrol4+bn", "enrol8", "enrol8+bn", "training", "utterance")
MODE_TITLES = {"transductive": "transductive", "enrol4": "enrol k=4", "enrol8": "enrol k=8",
               "enrol4+bn": "enrol k=4 + AdaBN", "enrol8+bn": "enrol k=8 + AdaBN", "training": "training statistics", "utterance": "utterance"}


def is_legacy(metrics: dict) -> bool:
    """``True`` for a ``metrics.json`` written before runs were scored per test-time
    statistics mode (no ``test_by_stats``): its ``test/*`` are the only test scores."""
    return "test_by_stats" not in metrics


def validation_uar(metrics: dict, mode: str | None = None) -> float | None:
    """The validation UAR of a run's best checkpoint (fraction), ``None`` when unknown.

    With ``mode``, the validation part scored under that test-time statistics mode
    (``val_by_stats``) where the run recorded it, so recipes are compared on validation
    the way their test figure was made. Otherwise runs scored per mode give ``val/uar``
    (their headline mode); older ones ``best_val_uar`` (their ``val/uar`` was the last
    epoch's, not the selected checkpoint's)."""
    by_mode = metrics.get("val_by_stats") or {}
    if mode is not None and isinstance(by_mode.get(mode), dict) and by_mode[mode].get("uar") is not None:
        return float(by_mode[mode]["uar"])
    key = "best_val_uar" if is_legacy(metrics) else "val/uar"
    value = metrics.get(key, metrics.get("best_val_uar"))
    return None if value is None or math.isnan(float(value)) else float(value)


def legacy_mode(metrics: dict, normalize: str | None) -> str:
    """The mode behind a legacy run's ``test/*``: its recorded ``test_stats`` if any, else
    ``utterance`` for an utterance-normalised run and ``transductive`` (all of a test
    speaker's recordings, the only speaker statistics there were) otherwise."""
    return metrics.get("test_stats") or ("utterance" if (normalize or "utterance") == "utterance" else "transductive")


def scores_by_stats(metrics: dict, normalize: str | None = None, name: str = "run") -> dict[str, dict]:
    """A run's test scores per test-time statistics mode.

    Returns:
        ``{mode: {"war", "uar", "f1_macro" (fractions or None), "n" (int or None),
        "confusion_matrix" ([C, C] list or None), "per_speaker" ({speaker: [C, C]} or None),
        "legacy" (bool)}}``. A run with ``test_by_stats`` gives its entries; an older
        run gives one entry, :func:`legacy_mode`, from its ``test/*`` and
        ``confusion_matrix`` (``legacy`` true, no per-speaker counts).

    Raises:
        ValueError: a mode's per-speaker confusion matrices do not add up to its
            confusion matrix (``name`` says which run), or a mode lacks ``uar``.
    """
    if is_legacy(metrics):
        if metrics.get("test/uar") is None:
            return {}
        return {legacy_mode(metrics, normalize): {
            "war": metrics.get("test/war"), "uar": metrics["test/uar"], "f1_macro": metrics.get("test/f1_macro"),
            "n": metrics.get("n_test"), "confusion_matrix": metrics.get("confusion_matrix"), "per_speaker": None,
            "legacy": True}}
    out = {}
    for mode, m in metrics["test_by_stats"].items():
        if m.get("uar") is None:
            raise ValueError(f"{name}: test_by_stats[{mode!r}] has no uar")
        per_speaker = m.get("per_speaker_confusion") or None
        if per_speaker and m.get("confusion_matrix") is not None:
            total = np.sum([np.asarray(c) for c in per_speaker.values()], axis=0)
            if not np.array_equal(total, np.asarray(m["confusion_matrix"])):
                raise ValueError(f"{name}: test_by_stats[{mode!r}]: the per-speaker confusion matrices of "
                                 f"{len(per_speaker)} speaker(s) do not add up to its confusion_matrix")
        out[mode] = {"war": m.get("war"), "uar": m["uar"], "f1_macro": m.get("f1_macro"), "n": m.get("n"),
                     "confusion_matrix": m.get("confusion_matrix"), "per_speaker": per_speaker, "legacy": False}
    return out


def mode_order(modes) -> list[str]:
    """``modes`` in table order: :data:`MODES` first, any other (e.g. ``enrol2``) after, sorted."""
    modes = set(modes)
    return [m for m in MODES if m in modes] + sorted(modes - set(MODES))


@dataclass
class Job:
    """One job of a multirun: its folder, overrides ``{key: value}`` and metrics
    (``None`` when the job did not finish)."""

    path: Path
    overrides: dict[str, str]
    metrics: dict | None = None


@dataclass
class Group:
    """The jobs sharing one configuration."""

    config: dict[str, str]
    jobs: list[Job] = field(default_factory=list)


def _parse_override(line: str) -> tuple[str, str]:
    key, _, value = line.partition("=")
    return key.lstrip("+~"), value


def read_jobs(multirun_dir: str | Path) -> list[Job]:
    """Every job folder (one holding ``.hydra/overrides.yaml``) below ``multirun_dir``.

    Raises:
        FileNotFoundError: the folder does not exist or holds no Hydra job.
    """
    root = Path(multirun_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"multirun directory {root} does not exist")
    jobs = []
    for overrides_file in sorted(root.glob("**/.hydra/overrides.yaml")):
        job_dir = overrides_file.parent.parent
        overrides = dict(_parse_override(str(x)) for x in (yaml.safe_load(overrides_file.read_text()) or []))
        metrics_file = job_dir / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
        jobs.append(Job(job_dir, overrides, metrics))
    if not jobs:
        raise FileNotFoundError(f"no Hydra jobs (*/.hydra/overrides.yaml) under {root}")
    return jobs


def group_jobs(jobs: list[Job], collapse: tuple[str, ...] = DEFAULT_COLLAPSE) -> list[Group]:
    """Group jobs by the override keys whose values differ between jobs (collapsed keys
    and keys equal in every job left out), in order of first appearance."""
    keys = list(dict.fromkeys(k for j in jobs for k in j.overrides))
    varying = [k for k in keys if k not in collapse and len({j.overrides.get(k) for j in jobs}) > 1]
    groups: dict[tuple, Group] = {}
    for job in jobs:
        config = {k: job.overrides.get(k, "") for k in varying}
        groups.setdefault(tuple(config.items()), Group(config)).jobs.append(job)
    return list(groups.values())


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (``ddof=1``) of ``values``; ``None`` for the
    mean of no values and for the std of fewer than two."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def summarize(groups: list[Group]) -> list[dict]:
    """One row per group: the config keys, ``runs``, ``failed``, and ``<score> mean`` /
    ``<score> std`` in % for each score of :data:`SCORES` (validation: the best
    checkpoint's, :func:`validation_uar`) and, for runs scored per test-time statistics
    mode, ``test UAR <mode> mean`` / ``std`` per mode (over the runs that have it)."""
    rows = []
    for g in groups:
        done = [j for j in g.jobs if j.metrics is not None]
        row: dict = {**g.config, "runs": len(done), "failed": len(g.jobs) - len(done)}
        for name, key in SCORES:
            if key == "best_val_uar":  # the best checkpoint's, whichever key the run recorded it under
                values = [100 * v for j in done if (v := validation_uar(j.metrics)) is not None]
            else:
                values = [100 * float(j.metrics[key]) for j in done if j.metrics.get(key) is not None
                          and not math.isnan(float(j.metrics[key]))]
            row[f"{name} mean"], row[f"{name} std"] = mean_std(values)
        by_stats = [j.metrics["test_by_stats"] for j in done if not is_legacy(j.metrics)]
        for mode in mode_order(m for b in by_stats for m in b):
            values = [100 * float(b[mode]["uar"]) for b in by_stats if mode in b]
            row[f"test UAR {MODE_TITLES.get(mode, mode)} mean"], row[f"test UAR {MODE_TITLES.get(mode, mode)} std"] = mean_std(values)
        rows.append(row)
    return rows


def _fmt(value) -> str:
    if value is None:
        return ""
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def to_markdown(rows: list[dict], title: str = "") -> str:
    """A Markdown table of :func:`summarize` rows, ``mean ± std`` per score (a per-mode
    column only when some row has it)."""
    config_keys = [k for k in rows[0] if k not in ("runs", "failed") and not k.endswith((" mean", " std"))]
    names = [n for n, _ in SCORES] + list(dict.fromkeys(
        k[:-len(" mean")] for r in rows for k in r if k.startswith("test UAR ") and k.endswith(" mean")))
    header = [*(config_keys or ["configuration"]), "runs", "failed", *[f"{n} (%)" for n in names]]
    lines = ([f"## {title}", ""] if title else []) + ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        scores = []
        for name in names:
            mean, std = r.get(f"{name} mean"), r.get(f"{name} std")
            scores.append("" if mean is None else f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else ""))
        config = [str(r[k]) for k in config_keys] or ["all jobs"]
        lines.append("| " + " | ".join([*config, str(r["runs"]), str(r["failed"]), *scores]) + " |")
    return "\n".join(lines) + "\n"


def write_csv(rows: list[dict], path: Path) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows({k: _fmt(r.get(k)) for k in keys} for r in rows)


def aggregate(multirun_dir: str | Path, collapse: tuple[str, ...] = DEFAULT_COLLAPSE) -> list[dict]:
    """Read, group and summarise ``multirun_dir``; write ``summary.md``,
    ``summary.csv`` and ``jobs.csv`` into it. Returns the summary rows."""
    root = Path(multirun_dir)
    jobs = read_jobs(root)
    rows = summarize(group_jobs(jobs, collapse))
    (root / "summary.md").write_text(to_markdown(rows, title=f"{root.name}: mean ± std over {', '.join(collapse)}"))
    write_csv(rows, root / "summary.csv")
    def percent(job: Job, key: str):
        if key == "best_val_uar" and job.metrics is not None:
            value = validation_uar(job.metrics)
        else:
            value = (job.metrics or {}).get(key)
        return None if value is None else 100 * float(value)

    write_csv([{"job": str(j.path.relative_to(root)), **j.overrides, "finished": j.metrics is not None,
                **{f"{name} (%)": percent(j, key) for name, key in SCORES},
                "scoring": (j.metrics or {}).get("scoring"), "test_stats": (j.metrics or {}).get("test_stats"),
                "split": (j.metrics or {}).get("split")} for j in jobs], root / "jobs.csv")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_lightning.evaluation.aggregate", description=__doc__.split("\n\n")[0])
    parser.add_argument("multirun_dir", help="a Hydra sweep directory, e.g. outputs/multirun/2026-01-01_12-00-00")
    parser.add_argument("--collapse", nargs="*", default=list(DEFAULT_COLLAPSE),
                        help="override keys averaged over (default: data.fold seed)")
    args = parser.parse_args(argv)
    try:
        rows = aggregate(args.multirun_dir, tuple(args.collapse))
    except FileNotFoundError as exc:
        print(f"error: {exc}")
        return 2
    print((Path(args.multirun_dir) / "summary.md").read_text())
    print(f"wrote summary.md, summary.csv and jobs.csv in {args.multirun_dir} ({sum(r['runs'] for r in rows)} finished jobs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
