"""Confidence calibration: temperature scaling, calibration metrics, reliability diagram
and the risk-coverage curve.

A classifier is *calibrated* when, among the predictions it makes with confidence
``p``, a share ``p`` is right. Deep networks are routinely over-confident (Guo et al.,
2017, "On calibration of modern neural networks", ICML). Temperature scaling (same
paper, section 4.2) divides the logits ``z`` by one scalar ``T > 0`` fitted on held-out
data to minimise the negative log-likelihood (NLL): ``softmax(z / T)``. ``T > 1``
softens over-confident probabilities, ``T < 1`` sharpens under-confident ones. Dividing
every logit of an example by the same positive number keeps their order, so **the
arg-max, and with it every label, WAR and UAR, are unchanged**; only the confidences
move.

Conventions:

* Temperature scaling is shift-invariant, so it gives the same probabilities on
  logits and on log-probabilities (``log softmax(z) = z - logsumexp(z)``):
  ``softmax(log p / T) = softmax(z / T)``. An ensemble
  (:class:`ser_lightning.models.ensemble.ProbabilityAverage`, whose output is the log of the
  members' mean probability ``log p_bar``) is therefore calibrated *as a whole* with
  one temperature on that output, fitted on the members' shared validation part:
  ``softmax(log p_bar / T)``, i.e. ``p_bar ** (1 / T)`` renormalised. (One temperature
  per member could change the ensemble's arg-max; one on the output cannot.)
* A checkpoint stores its calibration in ``hyper_parameters["calibration"]``, the dict
  :func:`fit_calibration` returns::

      {"method": "temperature", "temperature": T, "fitted_on": "val", "n": n_val,
       "nll_before": ..., "nll_after": ...}

  ``calibration=none`` stores ``method="none"`` and ``temperature=1.0``; a checkpoint
  without the key (written before calibration existed) has ``T = 1``
  (:func:`checkpoint_temperature`).
* Scores come as probabilities ``[n, n_classes]`` (rows summing to 1) and targets
  ``[n]`` (class indices); a prediction's *confidence* is its largest probability
  (top-label confidence).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch

from ser_lightning.errors import ConfigError
from ser_lightning.inference.calibration import _check_temperature, _matrix

log = logging.getLogger(__name__)

#: Equal-width confidence bins of the expected calibration error (Guo et al., 2017).
N_BINS = 15
#: Search interval of the temperature. Wide enough for any real model (fitted
#: temperatures are typically 0.5 to 5); a fit that ends on a bound means the
#: held-out set carries no evidence for a finite optimum (for example a set the model
#: gets entirely right, whose NLL keeps falling as T -> 0) and is logged as a warning.
TEMPERATURE_BOUNDS = (0.05, 20.0)
#: Probabilities are clipped to at least this before taking logs (NLL), as
#: ``sklearn.metrics.log_loss`` clips, so one zero probability gives a large finite loss.
PROB_FLOOR = 1e-12
#: Confidence thresholds of :func:`risk_coverage`'s table (0.00, 0.05, ..., 0.95).
RISK_COVERAGE_THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(20))
#: Coverages at which :func:`risk_coverage` reports the accuracy of the kept predictions.
REPORTED_COVERAGES = (0.8, 0.5)


# --- inputs -------------------------------------------------------------------------


def _targets(targets, n: int, n_classes: int) -> torch.Tensor:
    targets = torch.as_tensor(np.asarray(targets) if not isinstance(targets, torch.Tensor) else targets)
    if targets.ndim != 1 or len(targets) != n:
        raise ValueError(f"targets must be [n] = [{n}] class indices, got shape {list(targets.shape)}")
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise ValueError(f"targets must be integer class indices, got dtype {targets.dtype}")
    targets = targets.long()
    if n and (targets.min() < 0 or targets.max() >= n_classes):
        raise ValueError(f"targets must lie in [0, {n_classes - 1}], got values {targets.min().item()}..{targets.max().item()}")
    return targets


def _scores(values, targets, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked ``[n, C]`` float64 scores and ``[n]`` int64 targets."""
    values = _matrix(values, what)
    return values, _targets(targets.detach().cpu() if isinstance(targets, torch.Tensor) else targets, *values.shape)


def _probabilities(probs, targets) -> tuple[torch.Tensor, torch.Tensor]:
    probs, targets = _scores(probs, targets, "probs")
    if (probs < 0).any() or (probs > 1).any() or not torch.allclose(probs.sum(dim=1), torch.ones(len(probs), dtype=probs.dtype), atol=1e-3):
        raise ValueError("probs must be probabilities (each row in [0, 1], summing to 1); for logits use softmax_probabilities()")
    return probs, targets


# --- temperature scaling --------------------------------------------------------------


def _group_index(groups, n: int) -> torch.Tensor | None:
    """Checked ``[n]`` int64 group of each row (``None`` passes through)."""
    if groups is None:
        return None
    groups = torch.as_tensor(np.asarray(groups), dtype=torch.int64)
    if groups.shape != (n,) or (n and int(groups.min()) < 0):
        raise ValueError(f"groups must be [n] non-negative integers for {n} rows, got shape {tuple(groups.shape)}")
    return torch.unique(groups, return_inverse=True)[1]  # 0..n_groups-1


def _nll(logits: torch.Tensor, targets: torch.Tensor, temperature: float, groups: torch.Tensor | None) -> float:
    if groups is None:
        return float(torch.nn.functional.cross_entropy(logits / temperature, targets))
    probs = torch.softmax(logits / temperature, dim=1)
    n_groups = int(groups.max()) + 1
    summed = torch.zeros(n_groups, probs.shape[1], dtype=probs.dtype).index_add_(0, groups, probs)
    counts = torch.bincount(groups, minlength=n_groups).to(probs.dtype)[:, None]
    group_targets = torch.zeros(n_groups, dtype=torch.int64).index_copy_(0, groups, targets)  # rows of a group share it
    picked = (summed / counts)[torch.arange(n_groups), group_targets]
    return float(-picked.clamp_min(1e-300).log().mean())


def nll(logits, targets, temperature: float = 1.0, groups=None) -> float:
    """Mean negative log-likelihood (cross-entropy, nats) of ``softmax(logits / T)``.

    Args:
        logits: ``[n, C]`` logits or log-probabilities.
        targets: ``[n]`` class indices.
        groups: ``[n]`` ints, or ``None``: rows of one group (the windows of one file)
            form one example whose probabilities are the mean of its rows' (as a file's
            in :class:`~ser_lightning.inference.Predictor`); the NLL is then per group.
            The rows of a group must share their target.

    Raises:
        ValueError: see :func:`fit_temperature`.
    """
    logits, targets = _scores(logits, targets, "logits")
    return _nll(logits, targets, _check_temperature(temperature), _group_index(groups, len(targets)))


def fit_temperature(logits, targets, bounds: tuple[float, float] = TEMPERATURE_BOUNDS, tol: float = 1e-7, groups=None) -> float:
    """The temperature ``T`` minimising the NLL of ``softmax(logits / T)`` on held-out
    data (temperature scaling, Guo et al., 2017, section 4.2).

    The NLL is convex in ``1 / T`` (a log-sum-exp of functions linear in it, minus a
    linear term), so it has one minimum and is unimodal in ``log T``; a golden-section
    search on ``log T`` within ``bounds`` finds it deterministically, for any number of
    examples. A set with no evidence for a finite optimum (every prediction right: the
    NLL keeps falling as ``T -> 0``; every one wrong: it keeps falling as ``T -> inf``)
    ends on a bound, with a warning in the log.

    Args:
        logits: ``[n, C]`` logits or log-probabilities (tensor or array), ``n >= 1``.
        targets: ``[n]`` int class indices.
        bounds: ``(T_min, T_max)``, ``0 < T_min < T_max``.
        tol: stop when the bracket on ``log T`` is narrower than this.
        groups: see :func:`nll`: fit the NLL of the files' mean window probabilities,
            what a user is given, rather than of single windows. The NLL of a mean of
            softmaxes is not convex in ``1 / T`` in general; in practice it is unimodal,
            and the search still returns the best of the points it tried and the bounds.

    Returns:
        ``T`` (a float in ``bounds``).

    Raises:
        ValueError: empty input, shapes that do not match (``[n, C]`` and ``[n]``),
            fewer than two classes, non-finite logits, targets outside ``[0, C)`` or not
            integers, or bad bounds.
    """
    logits, targets = _scores(logits, targets, "logits")
    group_of = _group_index(groups, len(targets))
    lo_t, hi_t = (_check_temperature(b) for b in bounds)
    if lo_t >= hi_t:
        raise ValueError(f"bounds must be (T_min, T_max) with T_min < T_max, got {bounds}")

    def loss(log_t: float) -> float:
        return _nll(logits, targets, math.exp(log_t), group_of)

    # golden-section search (Kiefer, 1953) on log T
    inv_phi = (math.sqrt(5) - 1) / 2
    a, b = math.log(lo_t), math.log(hi_t)
    c, d = b - inv_phi * (b - a), a + inv_phi * (b - a)
    fc, fd = loss(c), loss(d)
    while b - a > tol:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - inv_phi * (b - a)
            fc = loss(c)
        else:
            a, c, fc = c, d, fd
            d = a + inv_phi * (b - a)
            fd = loss(d)
    # the ends of the interval are candidates too (a monotone NLL has its minimum there)
    candidates = [(loss(math.log(lo_t)), lo_t), ((fc if fc <= fd else fd), math.exp(c if fc <= fd else d)), (loss(math.log(hi_t)), hi_t)]
    best_loss, best_t = min(candidates, key=lambda x: x[0])
    if min(math.log(best_t / lo_t), math.log(hi_t / best_t)) < 1e-3:
        accuracy = float((logits.argmax(dim=1) == targets).double().mean())
        log.warning("temperature scaling ended on its bound T=%.3g (n=%d, accuracy %.1f%%): the held-out set gives no "
                    "finite optimum; a larger, mixed validation set calibrates better", best_t, len(targets), 100 * accuracy)
    return float(best_t)


def fit_calibration(logits, targets, method: str = "temperature", fitted_on: str = "val", groups=None) -> dict:
    """Fit a calibration on held-out scores and describe it in the form a checkpoint
    stores (``hyper_parameters["calibration"]``).

    Args:
        logits: ``[n, C]`` logits or log-probabilities of the held-out part (for an
            ensemble: the log of its mean probabilities).
        targets: ``[n]`` class indices.
        method: ``"temperature"`` (temperature scaling) or ``"none"`` (``T = 1``).
        fitted_on: name of the part the scores come from (``"val"``).
        groups: see :func:`nll` (windows of one file are one example; ``n`` counts files).

    Returns:
        ``{"method", "temperature", "fitted_on", "n", "nll_before", "nll_after"}``
        (NLL in nats per example, before and after calibration), plus ``"note"`` when
        no temperature was fitted: a held-out part whose arg-max is right on every
        example (or wrong on every one) has no finite NLL minimum (it lies at T -> 0, or
        T -> infinity), so ``T = 1`` is kept rather than a bound of the search.

    Raises:
        ValueError: an unknown ``method``; see :func:`fit_temperature`.
    """
    if method not in ("temperature", "none"):
        raise ConfigError(f"calibration method '{method}' is unknown; allowed: ['temperature', 'none']")
    before = nll(logits, targets, groups=groups)
    n = len(targets) if groups is None else len(np.unique(np.asarray(groups)))
    out = {"method": method, "temperature": 1.0, "fitted_on": fitted_on, "n": n}
    if method == "temperature":
        correct = np.asarray(torch.as_tensor(logits).argmax(dim=1) == torch.as_tensor(targets))
        if correct.all() or not correct.any():
            out["note"] = f"not fitted: the arg-max is {'right' if correct.all() else 'wrong'} on every {fitted_on} example"
        else:
            out["temperature"] = fit_temperature(logits, targets, groups=groups)
    return {**out, "nll_before": before, "nll_after": nll(logits, targets, out["temperature"], groups=groups)}


# --- calibration metrics --------------------------------------------------------------


def calibration_metrics(probs, targets, n_bins: int = N_BINS) -> dict:
    """Expected calibration error, NLL, Brier score and accuracy of class probabilities,
    with the per-bin table of the reliability diagram.

    * ECE (Guo et al., 2017, eq. 3; top-label): confidences (largest probability) fall
      into ``n_bins`` equal-width bins ``((m-1)/M, m/M]``; ECE is the mean over bins of
      ``|accuracy - mean confidence|`` weighted by the bin's share of examples. It equals
      ``torchmetrics``' ``MulticlassCalibrationError(n_bins, norm="l1")`` except for a
      confidence exactly on a bin edge (torchmetrics bins ``[lo, hi)`` and gives a
      confidence of exactly 1 a bin of its own), which is why the bins are computed here:
      the table and the ECE come from the same binning.
    * NLL: mean ``-log p[target]`` in nats (probabilities clipped at :data:`PROB_FLOOR`).
    * Brier score (Brier, 1950, multiclass form): mean over examples of
      ``sum_c (p_c - [c == target])^2``; 0 is perfect, 2 the worst.

    Args:
        probs: ``[n, C]`` probabilities (rows sum to 1).
        targets: ``[n]`` class indices.
        n_bins: number of confidence bins.

    Returns:
        ``{"ece", "nll", "brier", "accuracy", "mean_confidence", "n", "bins"}`` (ECE,
        accuracy and confidences as fractions); ``bins`` is a list of ``n_bins`` dicts
        ``{"lower", "upper", "count", "confidence", "accuracy"}`` (``confidence`` and
        ``accuracy`` ``None`` for an empty bin). JSON-ready.

    Raises:
        ValueError: empty input, mismatched shapes, rows that are not probabilities,
            targets outside ``[0, C)``, or ``n_bins < 1``.
    """
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    probs, targets = _probabilities(probs, targets)
    n = len(targets)
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == targets).double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    index = torch.bucketize(confidence, edges[1:-1], right=False)  # bins (lo, hi]
    count = torch.bincount(index, minlength=n_bins).double()
    conf_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, index, confidence)
    acc_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, index, correct)
    bins = [{"lower": float(edges[m]), "upper": float(edges[m + 1]), "count": int(count[m]),
             "confidence": float(conf_sum[m] / count[m]) if count[m] else None,
             "accuracy": float(acc_sum[m] / count[m]) if count[m] else None} for m in range(n_bins)]
    onehot = torch.nn.functional.one_hot(targets, probs.shape[1]).double()
    return {"ece": ece_from_bins(bins), "nll": float(-probs.gather(1, targets[:, None]).clamp_min(PROB_FLOOR).log().mean()),
            "brier": float(((probs - onehot) ** 2).sum(dim=1).mean()), "accuracy": float(correct.mean()),
            "mean_confidence": float(confidence.mean()), "n": n, "bins": bins}


def ece_from_bins(bins: list[dict]) -> float:
    """ECE from a per-bin table (:func:`calibration_metrics`' ``bins``):
    ``sum_m count_m / n * |accuracy_m - confidence_m|``.

    Raises:
        ValueError: a table with no examples.
    """
    n = sum(b["count"] for b in bins)
    if n == 0:
        raise ValueError("the bin table holds no examples")
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]))


def pooled_bins(tables: list[list[dict]]) -> list[dict]:
    """One per-bin table for several parts scored alike (the folds of a protocol): counts
    added, accuracy and mean confidence weighted by count, so :func:`ece_from_bins` of the
    result is the ECE of all their examples together.

    Raises:
        ValueError: tables with different bins.
    """
    if len({tuple((b["lower"], b["upper"]) for b in t) for t in tables}) != 1:
        raise ValueError("the bin tables have different bins")
    out = []
    for column in zip(*tables, strict=True):
        n = sum(b["count"] for b in column)
        means = {key: sum(b[key] * b["count"] for b in column if b["count"]) / n if n else None for key in ("confidence", "accuracy")}
        out.append({"lower": column[0]["lower"], "upper": column[0]["upper"], "count": n, **means})
    return out


def ece_noise_floor(bins: list[dict], n_draws: int = 1000, seed: int = 0) -> float:
    """The ECE a *perfectly calibrated* model would show with these bins' counts and mean
    confidences: each bin's correct count drawn as ``Binomial(count, confidence)``, the
    ECE averaged over ``n_draws`` draws. ECE is biased upwards on small samples (a few
    hundred examples in 15 bins): a measured ECE near this floor is as good as the sample
    can show (Kumar, Liang & Ma, 2019, "Verified uncertainty calibration", NeurIPS,
    on the bias of the binned estimator).

    Raises:
        ValueError: a table with no examples.
    """
    n = sum(b["count"] for b in bins)
    if n == 0:
        raise ValueError("the bin table holds no examples")
    rng = np.random.default_rng(seed)
    used = [b for b in bins if b["count"]]
    counts = np.array([b["count"] for b in used])
    conf = np.clip(np.array([b["confidence"] for b in used]), 0.0, 1.0)
    correct = rng.binomial(counts, conf, size=(n_draws, len(used)))
    return float(np.mean(np.sum(np.abs(correct / counts - conf) * counts, axis=1) / n))


def reliability_diagram(bins_before: list[dict], bins_after: list[dict] | None, path: str | Path, title: str = "") -> None:
    """Save a reliability diagram as a PNG: accuracy against mean confidence per bin,
    before calibration (left) and after (right), each bar labelled with its number of
    examples, the diagonal (perfect calibration) and the ECE in the panel title.

    Args:
        bins_before, bins_after: per-bin tables of :func:`calibration_metrics`;
            ``bins_after`` ``None`` draws one panel.
        path: output PNG.
        title: figure title (for example the run and part).

    Raises:
        ValueError: an empty table.
    """
    panels = [("before calibration", bins_before)] + ([("after calibration", bins_after)] if bins_after is not None else [])
    from ser_lightning.plots import plt  # matplotlib only where a figure is drawn (prediction never imports it)

    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.4), squeeze=False)
    for ax, (name, bins) in zip(axes[0], panels, strict=True):
        ece = ece_from_bins(bins)
        width = bins[0]["upper"] - bins[0]["lower"]
        full = [b for b in bins if b["count"]]
        centres = [(b["lower"] + b["upper"]) / 2 for b in full]
        ax.bar(centres, [b["accuracy"] for b in full], width=width * 0.95, color="tab:blue", alpha=0.8, label="accuracy")
        # the gap to the bin's mean confidence: red outline above or below each bar
        ax.bar(centres, [b["confidence"] - b["accuracy"] for b in full], bottom=[b["accuracy"] for b in full],
               width=width * 0.95, fill=False, edgecolor="tab:red", hatch="//", linewidth=0.8, label="gap to confidence")
        for x, b in zip(centres, full, strict=True):
            ax.text(x, max(b["accuracy"], b["confidence"]) + 0.015, str(b["count"]), ha="center", va="bottom", fontsize=6.5)
        ax.plot([0, 1], [0, 1], "k--", linewidth=0.8, label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.08)
        ax.set_xlabel("confidence (top-label probability)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{name}: ECE {ece:.1%}, n={sum(b['count'] for b in bins)}", fontsize=9)
        ax.legend(loc="upper left", fontsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- selective prediction --------------------------------------------------------------


def risk_coverage(probs, targets, thresholds: tuple[float, ...] = RISK_COVERAGE_THRESHOLDS,
                  coverages: tuple[float, ...] = REPORTED_COVERAGES) -> dict:
    """The risk-coverage table of abstaining below a confidence threshold (selective
    classification, Geifman & El-Yaniv, 2017, "Selective classification for deep
    neural networks", NeurIPS): a prediction is kept when its confidence is at least
    the threshold (``predict.py min_confidence``), and for each threshold the table
    gives the share kept (coverage) and the accuracy of the kept predictions.

    Args:
        probs: ``[n, C]`` probabilities (calibrated or not; the ranking is what counts).
        targets: ``[n]`` class indices.
        thresholds: confidence thresholds of the table, in ``[0, 1]``.
        coverages: shares in ``(0, 1]`` at which to report the accuracy of the
            ``ceil(c * n)`` most confident predictions (ties in confidence kept in input
            order), with the threshold that keeps them (their lowest confidence).

    Returns:
        ``{"n", "accuracy", "rows": [{"threshold", "coverage", "n_kept", "accuracy"}],
        "at_coverage": [{"coverage", "n_kept", "accuracy", "threshold"}]}`` with
        fractions; a row's ``accuracy`` is ``None`` when it keeps nothing. Rows are in
        increasing threshold order, so coverage never increases along them. JSON-ready.

    Raises:
        ValueError: bad probabilities or targets (see :func:`calibration_metrics`), or
            a threshold outside ``[0, 1]`` or a coverage outside ``(0, 1]``.
    """
    probs, targets = _probabilities(probs, targets)
    if any(not 0 <= t <= 1 for t in thresholds):
        raise ValueError(f"thresholds must lie in [0, 1], got {list(thresholds)}")
    if any(not 0 < c <= 1 for c in coverages):
        raise ValueError(f"coverages must lie in (0, 1], got {list(coverages)}")
    n = len(targets)
    confidence, predicted = probs.max(dim=1)
    correct = predicted == targets
    rows = []
    for t in sorted(float(t) for t in thresholds):
        kept = confidence >= t
        k = int(kept.sum())
        rows.append({"threshold": t, "coverage": k / n, "n_kept": k, "accuracy": float(correct[kept].double().mean()) if k else None})
    order = torch.sort(confidence, descending=True, stable=True).indices
    at = []
    for c in coverages:
        k = max(1, math.ceil(c * n - 1e-9))  # the 1e-9: 0.8 * 10 is 8.000000000000002 in floats
        top = order[:k]
        at.append({"coverage": float(c), "n_kept": k, "accuracy": float(correct[top].double().mean()),
                   "threshold": float(confidence[top].min())})
    return {"n": n, "accuracy": float(correct.double().mean()), "rows": rows, "at_coverage": at}


def risk_coverage_plot(table: dict, path: str | Path, title: str = "") -> None:
    """Save :func:`risk_coverage`'s table as a PNG: accuracy of the kept predictions
    against coverage, one point per threshold (labelled with it), the reported
    coverages starred, and the accuracy without abstention as a dashed line.

    Args:
        table: the dict :func:`risk_coverage` returns.
        path: output PNG.
        title: figure title.
    """
    rows = [r for r in table["rows"] if r["n_kept"]]
    from ser_lightning.plots import plt

    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    ax.plot([100 * r["coverage"] for r in rows], [100 * r["accuracy"] for r in rows], "-o", markersize=3.5,
            label="keep confidence >= threshold")
    previous = None
    for r in rows:
        # label each distinct point once (thresholds below every confidence share a point)
        if previous is None or r["n_kept"] != previous:
            ax.annotate(f"{r['threshold']:.2f}", (100 * r["coverage"], 100 * r["accuracy"]), textcoords="offset points",
                        xytext=(3, 4), fontsize=6.5, color="0.3")
        previous = r["n_kept"]
    for a in table["at_coverage"]:
        ax.plot(100 * a["coverage"], 100 * a["accuracy"], "*", color="tab:red", markersize=10)
        ax.annotate(f"{a['accuracy']:.1%} at {a['coverage']:.0%}\n(threshold {a['threshold']:.2f})",
                    (100 * a["coverage"], 100 * a["accuracy"]), textcoords="offset points", xytext=(6, -22), fontsize=7,
                    color="tab:red")
    ax.axhline(100 * table["accuracy"], color="k", linestyle="--", linewidth=0.8, label="no abstention")
    ax.set_xlim(0, 102)
    ax.set_xlabel("coverage: share of predictions kept (%)")
    ax.set_ylabel("accuracy of kept predictions (%)")
    ax.set_title(title or f"risk-coverage (n={table['n']}; labels: confidence threshold)", fontsize=9)
    ax.legend(loc="lower left", fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
