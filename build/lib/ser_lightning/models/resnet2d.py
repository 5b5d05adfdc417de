"""Residual 2-D CNN with attentive statistics pooling over time."""

from __future__ import annotations

import torch
from torch import nn

from ser_lightning.models.pooling import AttentiveStatsPool


class BasicBlock(nn.Module):
    """Two ``3x3`` convolutions with BatchNorm and an identity (or ``1x1``) shortcut
    (He et al., 2016, "Deep residual learning").

    Shapes: ``[batch, c_in, freq, time]`` -> ``[batch, c_out, freq / stride, time / stride]``.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet2d(nn.Module):
    """Residual 2-D CNN on a log-mel / MFCC image, pooled over time with attention.

    A ``3x3`` stem, one :class:`BasicBlock` per stage (stride 2 from the second stage on,
    halving frequency and time), the frequency axis folded into channels and projected
    to ``embed_dim`` with a ``1x1`` convolution, :class:`AttentiveStatsPool` over time,
    BatchNorm, dropout and a linear classifier. Emotion cues are unevenly spread over an
    utterance; attention lets the model weigh the frames that carry them.

    Args:
        n_features: feature bins per frame.
        n_classes: output classes.
        channels: output channels of each stage.
        embed_dim: channels of the frame sequence that is pooled.
        dropout: dropout before the classifier.

    Shapes: ``[batch, n_features, frames]`` -> logits ``[batch, n_classes]``.
    """

    def __init__(self, n_features: int, n_classes: int, channels: tuple[int, ...] = (16, 32, 64, 128),
                 embed_dim: int = 128, dropout: float = 0.3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, channels[0], 3, padding=1, bias=False), nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True))
        stages, c_in = [], channels[0]
        for i, c_out in enumerate(channels):
            stages.append(BasicBlock(c_in, c_out, stride=1 if i == 0 else 2))
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        freq_out = n_features
        for _ in channels[1:]:
            freq_out = (freq_out + 1) // 2  # conv stride 2, padding 1, kernel 3
        self.project = nn.Sequential(nn.Conv1d(c_in * freq_out, embed_dim, 1, bias=False), nn.BatchNorm1d(embed_dim), nn.ReLU(inplace=True))
        self.pool = AttentiveStatsPool(embed_dim)
        self.head = nn.Sequential(nn.BatchNorm1d(2 * embed_dim), nn.Dropout(dropout), nn.Linear(2 * embed_dim, n_classes))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(feats.unsqueeze(1)))  # [B, C, F', T']
        x = self.project(x.flatten(1, 2))  # [B, embed_dim, T']
        return self.head(self.pool(x))
