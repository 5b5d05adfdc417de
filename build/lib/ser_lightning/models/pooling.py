"""Pooling over time shared by the backbones."""

from __future__ import annotations

import torch
from torch import nn


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling (Okabe et al., 2018, Interspeech): a small network
    scores every frame per channel, softmax over time gives weights, and the weighted
    mean and standard deviation are concatenated.

    Shapes: ``[batch, channels, frames]`` -> ``[batch, 2 * channels]``.
    """

    def __init__(self, channels: int, hidden: int = 64):
        super().__init__()
        self.attention = nn.Sequential(
            nn.Conv1d(channels, hidden, 1), nn.Tanh(), nn.Conv1d(hidden, channels, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.attention(x).float(), dim=-1).to(x.dtype)
        mean = (w * x).sum(dim=-1)
        var = (w * x.pow(2)).sum(dim=-1) - mean.pow(2)
        return torch.cat([mean, var.clamp_min(1e-6).sqrt()], dim=1)
