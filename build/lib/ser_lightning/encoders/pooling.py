"""Learnable layer weights: the weighted sum of an encoder's hidden layers (SUPERB)."""

from __future__ import annotations

import torch
from torch import nn


class LayerWeights(nn.Module):
    """``sum_l softmax(w)_l * x[:, l]``: one learnable weight per layer, softmax-normalised,
    initialised equal (SUPERB's weighted-sum probe: Yang et al., 2021, "SUPERB: Speech
    processing Universal PERformance Benchmark", Interspeech).

    Shapes: ``[batch, layers, *rest]`` -> ``[batch, *rest]``.
    """

    def __init__(self, num_layers: int):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.weights.numel():
            raise ValueError(f"LayerWeights over {self.weights.numel()} layers got {x.shape[1]}")
        w = torch.softmax(self.weights.float(), dim=0).to(x.dtype)
        return torch.einsum("bl...,l->b...", x, w)
