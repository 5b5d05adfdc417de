"""The hierarchical bootstrap interval of a protocol's mean test UAR, and the vectorised
UAR/WAR it relies on (one definition: classes with true examples), on hand-made counts."""

from __future__ import annotations

import numpy as np
import pytest

from ser_lightning.evaluation.bootstrap import hierarchical_bootstrap_ci
from ser_lightning.metrics import confusion_scores, macro_f1, per_class_metrics, war_uar, war_uar_many

# 3 classes; speaker A is good at everything, speaker B only at class 0
A = [[4, 0, 0], [0, 4, 0], [1, 0, 3]]
B = [[4, 0, 0], [4, 0, 0], [2, 2, 0]]


def uar(cm) -> float:
    return war_uar(cm)[1]


def test_war_uar_many_is_war_uar_per_matrix_and_skips_absent_classes():
    stack = np.array([A, B, [[2, 1, 0], [0, 0, 0], [0, 1, 1]]])
    war, u = war_uar_many(stack)
    for k, cm in enumerate(stack):
        assert (war[k], u[k]) == pytest.approx(war_uar(cm))
    # class 1 has no true example in the third matrix: UAR is the mean of 2 recalls, not 3
    assert u[2] == pytest.approx((2 / 3 + 1 / 2) / 2) and war[2] == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="empty"):
        war_uar_many(np.zeros((1, 3, 3)))
    with pytest.raises(ValueError, match="n_classes"):
        war_uar(np.zeros((2, 3, 3)))


def test_confusion_scores_and_macro_f1_count_only_classes_with_examples():
    cm = [[2, 1, 0], [0, 0, 0], [0, 1, 1]]
    scores = confusion_scores(cm)
    # F1 class 0: P 1, R 2/3 -> 0.8; class 2: P 1, R 1/2 -> 2/3; class 1 has no example: left out
    assert scores["f1_macro"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert (scores["war"], scores["uar"]) == pytest.approx(war_uar(cm))
    with pytest.raises(ValueError, match="no true example"):
        macro_f1(per_class_metrics(np.zeros((2, 2)), ["a", "b"]))


def test_identical_folds_give_a_zero_width_interval():
    # LOSO-like: one speaker per fold, every fold the same, so every replicate is that UAR
    ci = hierarchical_bootstrap_ci([[A], [A], [A]], n_resamples=500)
    assert ci.low == pytest.approx(uar(A)) and ci.high == pytest.approx(uar(A)) and ci.mean == pytest.approx(uar(A))
    assert ci.speakers_resampled and ci.n_folds == 3 and ci.n_resamples == 500


def test_speakers_are_resampled_within_a_fold():
    # one fold of two speakers: a replicate pools AA, AB or BB (probabilities 1/4, 1/2, 1/4),
    # so the 95 % interval spans from the worst to the best of the three
    ci = hierarchical_bootstrap_ci([[A, B]], n_resamples=2000, seed=3)
    outcomes = [uar(np.add(A, A)), uar(np.add(A, B)), uar(np.add(B, B))]
    assert ci.mean == pytest.approx(uar(np.add(A, B)))  # the fold's pooled UAR, not the mean of speakers
    assert ci.low == pytest.approx(min(outcomes)) and ci.high == pytest.approx(max(outcomes))
    # the same fold given pooled (no per-speaker counts) can only be resampled whole: no spread
    pooled = hierarchical_bootstrap_ci([np.add(A, B)], n_resamples=2000, seed=3)
    assert pooled.low == pooled.high == pytest.approx(ci.mean) and not pooled.speakers_resampled


def test_interval_contains_the_mean_and_lies_within_the_fold_range():
    folds = [[A, B], [A], [B, B, A], [[[3, 1, 0], [1, 3, 0], [0, 1, 3]]]]
    ci = hierarchical_bootstrap_ci(folds, seed=1)
    fold_uars = [uar(np.sum(f, axis=0)) for f in folds]
    assert ci.mean == pytest.approx(np.mean(fold_uars))
    assert ci.low < ci.mean < ci.high
    # every replicate is a mean of pooled UARs, each between the worst and best speaker
    speaker_uars = [uar(s) for f in folds for s in f]
    assert min(speaker_uars) <= ci.low and ci.high <= max(speaker_uars)
    # fold resampling only (pooled folds) gives a narrower interval here: within-fold spread is lost
    folds_only = hierarchical_bootstrap_ci([np.sum(f, axis=0) for f in folds], seed=1)
    assert folds_only.mean == pytest.approx(ci.mean) and folds_only.high - folds_only.low < ci.high - ci.low
    assert min(fold_uars) <= folds_only.low and folds_only.high <= max(fold_uars)


def test_the_seed_makes_the_interval_reproducible():
    folds = [[A, B], [B, A, A], [A, B, B]]
    first, again = hierarchical_bootstrap_ci(folds, seed=7), hierarchical_bootstrap_ci(folds, seed=7)
    assert (first.low, first.high) == (again.low, again.high)
    others = {(c.low, c.high) for c in (hierarchical_bootstrap_ci(folds, n_resamples=200, seed=s) for s in range(8))}
    assert len(others) > 1  # the seed does drive the draws


def test_speakers_without_scored_recordings_are_dropped_and_bad_input_is_refused():
    empty = np.zeros((3, 3), dtype=int)
    with_empty = hierarchical_bootstrap_ci([[A, empty]], n_resamples=200)
    assert with_empty.low == with_empty.high == pytest.approx(uar(A))
    with pytest.raises(ValueError, match="no fold"):
        hierarchical_bootstrap_ci([])
    with pytest.raises(ValueError, match="fold 1: no scored recording"):
        hierarchical_bootstrap_ci([[A], [empty]])
    # folds with different class sets (one corpus per fold): the mean of each fold's own UAR
    mixed = hierarchical_bootstrap_ci([[A], [[[1, 0], [0, 1]]]], n_resamples=200)
    assert mixed.mean == pytest.approx((uar(A) + 1.0) / 2)
    with pytest.raises(ValueError, match="negative"):
        hierarchical_bootstrap_ci([[[[1, -1], [0, 1]]]])
    with pytest.raises(ValueError, match="level"):
        hierarchical_bootstrap_ci([[A]], level=1.5)
