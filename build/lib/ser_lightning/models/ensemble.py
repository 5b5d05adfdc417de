"""The probability-average ensemble: several backbones as one model."""

from __future__ import annotations

import math

import torch


class ProbabilityAverage(torch.nn.Module):
    """Several backbones as one: features ``[batch, n_features, frames]`` -> the log of the
    members' mean class probabilities ``[batch, n_classes]``.

    The output is a valid logit vector: its softmax is the mean of the members' softmax
    outputs (``log mean_m p_m = logsumexp_m log p_m - log M``), so code that applies a
    softmax to a model's output (:class:`~ser_lightning.inference.predictor.Predictor`) gets the
    ensemble's probabilities unchanged.

    Args:
        members: backbones with the same input features and classes.

    Raises:
        ValueError: no members.
    """

    def __init__(self, members: list[torch.nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = torch.nn.ModuleList(members)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack([torch.log_softmax(m(feats), dim=-1) for m in self.members])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))
