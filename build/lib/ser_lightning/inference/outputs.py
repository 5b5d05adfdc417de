"""What the predictor returns: one :class:`Prediction` per input, with its timeline of
:class:`WindowPrediction` rows."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Label of a window (or a whole input) whose energy is below the silence threshold.
SILENCE = "silence"


@dataclass
class WindowPrediction:
    """One window of an input's timeline.

    Attributes:
        start: window start in seconds from the beginning of the input.
        end: window end in seconds (the input's end for a window that was padded).
        energy_dbfs: mean energy of the window in dBFS.
        label: predicted class, or :data:`SILENCE` below the silence threshold.
        confidence: probability of ``label`` (``None`` for silence); for an ``uncertain``
            window (``min_confidence``), the probability of the withheld most probable class.
        probabilities: class name -> probability (empty for silence).
    """

    start: float
    end: float
    energy_dbfs: float
    label: str = SILENCE
    confidence: float | None = None
    probabilities: dict[str, float] = field(default_factory=dict)


@dataclass
class Prediction:
    """The result for one input.

    Attributes:
        source: file path or ``"array[i]"``.
        label: predicted class name; :data:`SILENCE` when every window is silent;
            ``uncertain`` when its confidence is below ``min_confidence``
            (:mod:`ser_lightning.inference.abstention`); ``None`` on error.
        confidence: probability of ``label`` (``None`` for silence and errors); for an
            ``uncertain`` input (``min_confidence``), the probability of the withheld most probable class.
        probabilities: class name -> probability (mean over the non-silent windows).
        error: why the input could not be predicted (``None`` on success).
        duration: seconds of audio read (``None`` when nothing could be read).
        windows: the timeline, one entry per analysis window, in time order.
        note: something the user should know about a successful prediction (silent
            windows, a truncated file), else ``None``.
        logits: ``[n_voiced_windows, n_classes]`` the model's raw logits of the
            classified windows (before the temperature), for calibration; ``None`` when
            nothing was classified.
    """

    source: str
    label: str | None = None
    confidence: float | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    duration: float | None = None
    windows: list[WindowPrediction] = field(default_factory=list)
    note: str | None = None
    logits: np.ndarray | None = field(default=None, repr=False)
