"""Confidence intervals for a protocol's mean test UAR: a hierarchical (cluster) bootstrap.

A protocol's figure is the mean over its folds (outer test splits) of each fold's test
UAR, where a fold's UAR is computed from the confusion matrix pooled over its test
speakers. Its uncertainty has two sources: which folds (train/test speaker partitions)
were drawn, and which speakers a fold happened to test on. Recordings of one speaker are
not independent, so the speaker, not the utterance, is the unit resampled inside a fold
(the cluster bootstrap; Davison & Hinkley, 1997, sec. 3.8; Field & Welsh, 2007).

One bootstrap replicate (Efron & Tibshirani, 1993, ch. 6 and 13, percentile interval):

1. draw ``n_folds`` folds with replacement;
2. for each drawn fold, draw as many of its test speakers with replacement and pool
   their per-speaker confusion matrices;
3. the statistic is the mean over the drawn folds of the pooled matrices' UAR
   (:func:`ser_lightning.metrics.war_uar_many`, the project's one definition).

The interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the
replicates. Assumptions and limits:

- Folds are exchangeable draws and speakers within a fold are exchangeable draws from
  the speaker population; utterances of one speaker are *not* assumed independent.
- Leave-one-speaker-out: one speaker per fold, so step 2 is degenerate (it always
  redraws that speaker) and all the variance comes from resampling folds.
- A fold given as one pooled matrix (records made before per-speaker confusion
  matrices were written) is resampled as a whole only: the interval then reflects the
  spread over folds and misses the within-fold speaker variance
  (:attr:`BootstrapCI.speakers_resampled` is ``False``).
- With very few folds (2 or 3) the percentile interval is coarse (few distinct
  replicate values) and tends to be too narrow; it is a description of the spread, not
  a guarantee of 95 % coverage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ser_lightning.metrics import war_uar_many

#: default number of bootstrap replicates and seed (an interval is reproducible)
N_RESAMPLES = 2000
SEED = 0


@dataclass(frozen=True)
class BootstrapCI:
    """A point estimate and its bootstrap percentile interval (fractions in [0, 1]).

    Attributes:
        mean: mean over folds of each fold's pooled test UAR (no resampling).
        low, high: the interval's bounds.
        level: the interval's nominal coverage, e.g. 0.95.
        n_resamples: bootstrap replicates drawn.
        n_folds: folds resampled.
        speakers_resampled: ``True`` when every fold came with per-speaker matrices (the
            hierarchical bootstrap; degenerate within a one-speaker fold), ``False`` when
            some fold was given pooled and so resampled as a whole.
    """

    mean: float
    low: float
    high: float
    level: float
    n_resamples: int
    n_folds: int
    speakers_resampled: bool


def _as_fold(fold, k: int) -> np.ndarray:
    """One fold as ``[n_speakers, C, C]`` counts, speakers without a scored recording dropped."""
    cm = np.asarray(fold, dtype=float)
    if cm.ndim == 2:
        cm = cm[None]
    if cm.ndim != 3 or cm.shape[1] != cm.shape[2]:
        raise ValueError(f"fold {k}: expected [n_speakers, n_classes, n_classes] confusion matrices, got shape {cm.shape}")
    if (cm < 0).any():
        raise ValueError(f"fold {k}: negative counts in a confusion matrix")
    cm = cm[cm.sum(axis=(1, 2)) > 0]  # a speaker whose recordings all went to enrolment scores nothing
    if not len(cm):
        raise ValueError(f"fold {k}: no scored recording")
    return cm


def hierarchical_bootstrap_ci(folds: Sequence, n_resamples: int = N_RESAMPLES, level: float = 0.95,
                              seed: int = SEED) -> BootstrapCI:
    """Percentile confidence interval of the mean over folds of the pooled test UAR,
    resampling folds and, within each drawn fold, its test speakers (module docstring).

    Args:
        folds: one entry per fold: its per-speaker confusion matrices
            ``[n_speakers, n_classes, n_classes]`` (counts, rows true, columns predicted),
            or a single pooled ``[n_classes, n_classes]`` matrix when per-speaker counts
            are not known (then the fold is resampled as a whole). Folds may have
            different classes (leave-one-corpus-out, one corpus per job): each fold's
            UAR is over its own classes and only the UARs are averaged.
        n_resamples: bootstrap replicates.
        level: nominal coverage in (0, 1).
        seed: seed of the generator (numpy PCG64): the same inputs and seed give the
            same interval.

    Raises:
        ValueError: no fold, a fold with no scored
            recording, negative counts, ``n_resamples < 1`` or ``level`` outside (0, 1).
    """
    if not len(folds):
        raise ValueError("no fold to bootstrap")
    if n_resamples < 1 or not 0 < level < 1:
        raise ValueError(f"need n_resamples >= 1 and 0 < level < 1, got {n_resamples} and {level}")
    per_speaker = all(np.ndim(f) == 3 for f in folds)
    fold_arrays = [_as_fold(f, k) for k, f in enumerate(folds)]
    n_folds = len(fold_arrays)
    mean = float(np.mean([war_uar_many(f.sum(axis=0, keepdims=True))[1][0] for f in fold_arrays]))
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, n_folds, size=(n_resamples, n_folds))  # [B, F] which fold fills each slot
    uar = np.empty((n_resamples, n_folds))
    for k, speakers in enumerate(fold_arrays):
        slots = drawn == k
        n_slots, n_spk = int(slots.sum()), len(speakers)
        if not n_slots:
            continue
        # how often each speaker is drawn when n_spk speakers are drawn with replacement: [n_slots, n_spk]
        counts = rng.multinomial(n_spk, np.full(n_spk, 1.0 / n_spk), size=n_slots)
        pooled = np.einsum("ns,scd->ncd", counts, speakers)
        uar[slots] = war_uar_many(pooled)[1]
    replicates = uar.mean(axis=1)
    low, high = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return BootstrapCI(mean=mean, low=float(low), high=float(high), level=level, n_resamples=n_resamples,
                       n_folds=n_folds, speakers_resampled=per_speaker)
