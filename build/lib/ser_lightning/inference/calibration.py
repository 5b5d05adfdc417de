"""Applying a fitted temperature (Guo et al., 2017, "On calibration of modern neural
networks", section 4.2): ``softmax(z / T)``, a model wrapper that divides its logits by
``T``, and the temperature a checkpoint records. Fitting ``T`` and measuring calibration
(ECE, NLL, Brier, reliability diagrams) is :mod:`ser_lightning.evaluation.calibration`;
its module docstring gives the conventions.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ser_lightning.errors import ConfigError


def _matrix(values, what: str) -> torch.Tensor:
    """Checked ``[n, C]`` float64 scores (``n >= 1``, ``C >= 2``, finite)."""
    values = torch.as_tensor(np.asarray(values) if not isinstance(values, torch.Tensor) else values).detach().cpu()
    if values.ndim != 2:
        raise ValueError(f"{what} must be [n, n_classes], got shape {list(values.shape)}")
    n, n_classes = values.shape
    if n == 0:
        raise ValueError(f"{what} is empty (no examples)")
    if n_classes < 2:
        raise ValueError(f"{what} needs at least 2 classes, got {n_classes}")
    values = values.to(torch.float64)
    if not torch.isfinite(values).all():
        raise ValueError(f"{what} contains NaN or infinite values (clip log-probabilities, e.g. log(p.clamp_min(1e-12)))")
    return values


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Temperature-scaled logits ``logits / T`` (any shape, classes on the last axis).

    The arg-max over classes is unchanged (every logit of an example is divided by the
    same positive number). Works on log-probabilities too (see the module docstring).

    Raises:
        ValueError: ``temperature`` is not a finite positive number.
    """
    temperature = _check_temperature(temperature)
    return logits / temperature


def softmax_probabilities(logits, temperature: float = 1.0) -> torch.Tensor:
    """``[n, C]`` logits (or log-probabilities) -> ``[n, C]`` float64 probabilities
    ``softmax(logits / T)``.

    Raises:
        ValueError: not a 2-D finite array with at least one row and two classes, or a
            bad temperature.
    """
    return torch.softmax(apply_temperature(_matrix(logits, "logits"), temperature), dim=1)


def _check_temperature(temperature: float) -> float:
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise ConfigError(f"temperature must be a positive number, got {temperature!r}") from None
    if not math.isfinite(t) or t <= 0:
        raise ConfigError(f"temperature must be a finite positive number, got {temperature!r}")
    return t


class TemperatureScaled(torch.nn.Module):
    """A model whose output logits are divided by a fixed temperature:
    ``model(*inputs) / T`` (``[batch, n_classes]``).

    Wraps a backbone or an ensemble (:class:`~ser_lightning.models.ensemble.ProbabilityAverage`)
    so every consumer that applies a softmax (the predictor, the exported graph) gets
    calibrated probabilities. ``T`` is a buffer (saved with the state dict, traced into
    an export). The arg-max is unchanged.

    Raises:
        ValueError: ``temperature`` is not a finite positive number.
    """

    def __init__(self, model: torch.nn.Module, temperature: float):
        super().__init__()
        self.model = model
        self.register_buffer("temperature", torch.tensor(_check_temperature(temperature)))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(*inputs) / self.temperature


def checkpoint_temperature(hyper_parameters: dict) -> float:
    """The temperature a checkpoint's hyper-parameters record (``1.0`` when it has no
    ``calibration`` entry or ``method="none"``).

    Raises:
        ValueError: a ``calibration`` entry without a finite positive ``temperature``.
    """
    record = hyper_parameters.get("calibration")
    if record is None or record.get("method") == "none":
        return 1.0
    if "temperature" not in record:
        raise ValueError(f"the checkpoint's calibration entry has no temperature: {record}")
    return _check_temperature(record["temperature"])


def calibrated_probabilities(logits: np.ndarray, temperature: float = 1.0, allowed: np.ndarray | None = None) -> np.ndarray:
    """``[n, n_classes]`` logits -> ``softmax(logits / T)`` as float32 ``[n, n_classes]``:
    the one place the temperature meets the logits (an input's probabilities are the mean
    of its windows' rows).

    Args:
        allowed: ``[n_classes]`` bool, the classes that may be predicted (``None``: all);
            the softmax runs over those only and the others get probability 0 (the
            arg-max over a target corpus's classes in cross-corpus scoring, e.g.
            Schuller et al., 2010; ``eval.py classes=target``, ``predict.py classes=[...]``).
    """
    z = torch.from_numpy(np.asarray(logits, np.float32)) / temperature
    if allowed is not None:
        z = z.masked_fill(~torch.from_numpy(np.asarray(allowed, dtype=bool)), float("-inf"))
    return torch.softmax(z, dim=-1).numpy()
