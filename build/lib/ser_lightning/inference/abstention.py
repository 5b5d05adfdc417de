"""Abstention: withhold a label whose confidence is too low (``predict.py min_confidence``).

A prediction (a whole input or one window of its timeline) whose confidence (the
probability of its top class) is below ``min_confidence`` gets the label
:data:`UNCERTAIN`; its confidence and class probabilities are kept, so the withheld
class can still be read from them. Silent windows and inputs (no confidence) and failed
inputs (an error) are left as they are. An abstention is an answer, not a failure.

Choose the threshold from data, not by guess: the risk-coverage table
(:func:`ser_lightning.evaluation.calibration.risk_coverage`) gives, for each threshold, the share of
predictions kept and their accuracy. Thresholds mean what they say only for calibrated
confidences (:mod:`ser_lightning.evaluation.calibration`).
"""

from __future__ import annotations

import dataclasses
import math

from ser_lightning.errors import ConfigError

#: Label of a prediction whose confidence is below ``min_confidence``.
UNCERTAIN = "uncertain"


def check_min_confidence(value) -> float | None:
    """``value`` as a threshold: ``None`` (no abstention) or a float in ``[0, 1]``.

    Raises:
        ValueError: anything else (a string, a boolean, a number outside ``[0, 1]``, NaN).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not 0 <= value <= 1:
        raise ConfigError(f"min_confidence={value!r}: use a probability in [0, 1] (or null for no abstention)")
    return float(value)


def _abstains(item, min_confidence: float) -> bool:
    return item.confidence is not None and getattr(item, "error", None) is None and item.confidence < min_confidence


def abstain_window(window, min_confidence: float | None):
    """A window of a timeline (:class:`~ser_lightning.inference.outputs.WindowPrediction`) with
    the label :data:`UNCERTAIN` when its confidence is below ``min_confidence``; else
    the window itself. The input is not modified.

    Raises:
        ValueError: see :func:`check_min_confidence`.
    """
    min_confidence = check_min_confidence(min_confidence)
    if min_confidence is None or not _abstains(window, min_confidence):
        return window
    return dataclasses.replace(window, label=UNCERTAIN)


def abstain(prediction, min_confidence: float | None):
    """One input's :class:`~ser_lightning.inference.outputs.Prediction` with the rule applied to
    the input (its mean probabilities) and to each window of its timeline,
    independently: a confident input may hold uncertain windows and the other way
    round. Returns a new object; the input is not modified.

    Raises:
        ValueError: see :func:`check_min_confidence`.
    """
    min_confidence = check_min_confidence(min_confidence)
    if min_confidence is None:
        return prediction
    windows = [abstain_window(w, min_confidence) for w in prediction.windows]
    label = UNCERTAIN if _abstains(prediction, min_confidence) else prediction.label
    return dataclasses.replace(prediction, label=label, windows=windows)


def apply_min_confidence(predictions: list, min_confidence: float | None) -> list:
    """:func:`abstain` over a list of predictions (``None``: the list unchanged).

    Raises:
        ValueError: see :func:`check_min_confidence`.
    """
    min_confidence = check_min_confidence(min_confidence)
    return list(predictions) if min_confidence is None else [abstain(p, min_confidence) for p in predictions]


def abstention_summary(predictions: list, min_confidence: float) -> str:
    """One line for the summary under ``predict.py``'s table: how many inputs and windows
    were labelled :data:`UNCERTAIN`, e.g. ``uncertain (confidence < 0.6): 2 of 5 inputs,
    7 of 31 windows``."""
    inputs = sum(p.label == UNCERTAIN for p in predictions)
    windows = sum(w.label == UNCERTAIN for p in predictions for w in p.windows)
    n_windows = sum(len(p.windows) for p in predictions)
    return (f"{UNCERTAIN} (confidence < {min_confidence:g}): {inputs} of {len(predictions)} inputs, "
            f"{windows} of {n_windows} windows")
