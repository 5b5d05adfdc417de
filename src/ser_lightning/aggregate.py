"""Gather a multirun directory into one results table: mean and std per configuration.

    python -m ser_lightning.aggregate outputs/multirun/<date_time> [--collapse data.fold seed]

Each job folder holds Hydra's ``.hydra/overrides.yaml`` and, when the job finished,
``metrics.json``. Jobs are grouped by the overrides that differ between jobs, leaving
out the collapsed keys (default: ``data.fold`` and ``seed``, so the folds of a speaker
cross-validation and repeated seeds become one row). Per group: the number of finished
and failed jobs, mean and standard deviation (sample std, ``ddof=1``; empty for a
single job) of test UAR and WAR and of the best validation UAR, in %.

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

import yaml

DEFAULT_COLLAPSE = ("data.fold", "seed")
#: (column name, metrics.json key)
SCORES = (("test UAR", "test/uar"), ("test WAR", "test/war"), ("best val UAR", "best_val_uar"))


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
    ``<score> std`` in % for each score of :data:`SCORES`."""
    rows = []
    for g in groups:
        done = [j for j in g.jobs if j.metrics is not None]
        row: dict = {**g.config, "runs": len(done), "failed": len(g.jobs) - len(done)}
        for name, key in SCORES:
            values = [100 * float(j.metrics[key]) for j in done if j.metrics.get(key) is not None
                      and not math.isnan(float(j.metrics[key]))]
            row[f"{name} mean"], row[f"{name} std"] = mean_std(values)
        rows.append(row)
    return rows


def _fmt(value) -> str:
    if value is None:
        return ""
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def to_markdown(rows: list[dict], title: str = "") -> str:
    """A Markdown table of :func:`summarize` rows, ``mean ± std`` per score."""
    config_keys = [k for k in rows[0] if k not in ("runs", "failed") and not k.endswith((" mean", " std"))]
    header = [*(config_keys or ["configuration"]), "runs", "failed", *[f"{n} (%)" for n, _ in SCORES]]
    lines = ([f"## {title}", ""] if title else []) + ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        scores = []
        for name, _ in SCORES:
            mean, std = r[f"{name} mean"], r[f"{name} std"]
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
        value = (job.metrics or {}).get(key)
        return None if value is None else 100 * float(value)

    write_csv([{"job": str(j.path.relative_to(root)), **j.overrides, "finished": j.metrics is not None,
                **{f"{name} (%)": percent(j, key) for name, key in SCORES},
                "split": (j.metrics or {}).get("split")} for j in jobs], root / "jobs.csv")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ser_lightning.aggregate", description=__doc__.split("\n\n")[0])
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
