"""Nested recipe selection: per outer test fold, the recipe validation chooses on that fold.

Several recipes (model, features, training settings) are run on the same folds of a
protocol. Reporting the recipe with the best mean *test* score would select on test
data; choosing one recipe by its mean validation score over all folds uses, for fold
``j``, validation speakers of other folds that may be fold ``j``'s test speakers. The
nested rule (Varma & Simon, 2006; Cawley & Talbot, 2010) avoids both:

- for each fold (job), among the recipes that finished it and were scored under the
  test-time statistics mode in question, choose the one with the highest validation UAR
  *on that fold* (its best checkpoint's, :func:`ser_lightning.evaluation.aggregate.validation_uar`);
- the reported figure is the mean over folds of the chosen recipes' test scores, with a
  hierarchical bootstrap interval (:mod:`ser_lightning.evaluation.bootstrap`) over the chosen runs.
  The interval takes the choices as given: it does not include how differently
  validation might have chosen on resampled data.

Ties (validation UARs equal to :data:`TIE_TOLERANCE`): when *every* candidate of a fold
ties (a validation set every recipe masters, such as TESS's same-speaker one), validation
cannot choose and the fold has **no choice**; the protocol then gets no nested figure.
When only some tie at the top, the tie goes to the recipe with the fewest trainable
parameters (``metrics.json``'s ``parameters``; a run without it, such as an ensemble,
counts as larger), then
to the first recipe tag in alphabetical order: deterministic, and blind to test data.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from ser_lightning.evaluation.aggregate import scores_by_stats, validation_uar
from ser_lightning.evaluation.bootstrap import BootstrapCI, hierarchical_bootstrap_ci

#: validation UARs closer than this are a tie (they come from the same counts)
TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class FoldChoice:
    """What validation chose on one fold.

    Attributes:
        job: the fold (job name).
        tag: the chosen recipe, ``None`` when there is no choice or no candidate.
        val_uar: the chosen (or tied) validation UAR, ``None`` without candidates.
        candidates: the recipes that competed, sorted.
        rule: how the choice was made: ``"best validation UAR"``, ``"tie: fewest
            parameters"``, ``"tie: first tag"``, ``"only candidate"``, ``"no choice"``
            (every candidate ties) or ``"no candidate"``.
    """

    job: str
    tag: str | None
    val_uar: float | None
    candidates: tuple[str, ...]
    rule: str


@dataclass(frozen=True)
class NestedSelection:
    """The nested selection of one protocol under one test-time statistics mode.

    Attributes:
        mode: the test-time statistics mode (``transductive``, ``enrol4``, ...).
        choices: one :class:`FoldChoice` per job of the protocol, in job order.
        uar, war: mean over the folds with a choice of the chosen runs' test UAR and WAR
            (fractions; ``None`` when no fold has a choice or WAR is missing).
        uar_std: sample standard deviation of those UARs (``None`` below 2 folds).
        ci: bootstrap interval of ``uar`` (``None`` without confusion matrices).
        complete: every job has a choice.
    """

    mode: str
    choices: tuple[FoldChoice, ...]
    uar: float | None
    war: float | None
    uar_std: float | None
    ci: BootstrapCI | None
    complete: bool


def _choose(job: str, candidates: dict[str, tuple[float, dict]]) -> FoldChoice:
    """``candidates``: recipe tag -> (validation UAR, metrics)."""
    tags = tuple(sorted(candidates))
    if not candidates:
        return FoldChoice(job, None, None, tags, "no candidate")
    best = max(v for v, _ in candidates.values())
    top = [t for t in tags if best - candidates[t][0] <= TIE_TOLERANCE]
    if len(tags) == 1:
        return FoldChoice(job, tags[0], best, tags, "only candidate")
    if len(top) == len(tags):
        return FoldChoice(job, None, best, tags, "no choice")
    if len(top) == 1:
        return FoldChoice(job, top[0], best, tags, "best validation UAR")
    params = {t: candidates[t][1].get("parameters") for t in top}
    known = [t for t in top if isinstance(params[t], int | float)]
    if known:
        fewest = min(params[t] for t in known)
        smallest = [t for t in known if params[t] == fewest]
        if len(smallest) == 1:
            return FoldChoice(job, smallest[0], best, tags, "tie: fewest parameters")
        return FoldChoice(job, smallest[0], best, tags, "tie: first tag")
    return FoldChoice(job, top[0], best, tags, "tie: first tag")


def nested_selection(runs: list[dict], jobs: list[str], mode: str, n_resamples: int = 2000,
                     seed: int = 0) -> NestedSelection:
    """Choose a recipe per fold on that fold's validation UAR and average the choices'
    test scores under ``mode`` (module docstring for the rule and ties).

    Args:
        runs: run records of one protocol: dicts with ``tag`` (recipe), ``job`` (fold),
            ``metrics`` (its ``metrics.json``) and optionally ``normalize`` (the run's
            ``features.normalize``, which names the mode of a record made before per-mode
            scoring, :func:`ser_lightning.evaluation.aggregate.legacy_mode`).
        jobs: the protocol's jobs, in report order.
        mode: test-time statistics mode whose test scores are averaged; only runs scored
            under it are candidates.
        n_resamples, seed: of the bootstrap interval.

    Raises:
        ValueError: two runs of one recipe for the same job, or a malformed record
            (:func:`ser_lightning.evaluation.aggregate.scores_by_stats`).
    """
    choices, chosen = [], []
    for job in jobs:
        candidates: dict[str, tuple[float, dict]] = {}
        scored: dict[str, dict] = {}
        for r in runs:
            if r["job"] != job:
                continue
            if r["tag"] in candidates:
                raise ValueError(f"two runs of recipe {r['tag']} for job {job}")
            val = validation_uar(r["metrics"], mode)
            by_mode = scores_by_stats(r["metrics"], r.get("normalize"), f"{r['tag']}/{job}")
            if val is not None and mode in by_mode:
                candidates[r["tag"]] = (val, r["metrics"])
                scored[r["tag"]] = by_mode[mode]
        choice = _choose(job, candidates)
        choices.append(choice)
        if choice.tag is not None:
            chosen.append(scored[choice.tag])
    uars = [float(s["uar"]) for s in chosen]
    wars = [float(s["war"]) for s in chosen if s.get("war") is not None]
    ci = None
    if chosen and all(s.get("per_speaker") or s.get("confusion_matrix") is not None for s in chosen):
        ci = hierarchical_bootstrap_ci([fold_confusions(s) for s in chosen], n_resamples=n_resamples, seed=seed)
    return NestedSelection(
        mode=mode, choices=tuple(choices), uar=statistics.fmean(uars) if uars else None,
        war=statistics.fmean(wars) if wars and len(wars) == len(chosen) else None,
        uar_std=statistics.stdev(uars) if len(uars) > 1 else None, ci=ci,
        complete=all(c.tag is not None for c in choices))


def fold_confusions(scores: dict):
    """The bootstrap input of one run's scores under a mode (an entry of
    :func:`ser_lightning.evaluation.aggregate.scores_by_stats`): its per-speaker confusion matrices
    ``[n_speakers, C, C]`` (sorted by speaker) when recorded, else its pooled ``[C, C]``.

    Raises:
        ValueError: neither is recorded.
    """
    if scores.get("per_speaker"):
        return [scores["per_speaker"][s] for s in sorted(scores["per_speaker"])]
    if scores.get("confusion_matrix") is None:
        raise ValueError("no confusion matrix recorded for these scores")
    return scores["confusion_matrix"]
