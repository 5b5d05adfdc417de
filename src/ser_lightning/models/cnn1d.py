"""1-D CNN over feature frames (the Conv1D models of earlier SER projects, on MFCCs)."""

from __future__ import annotations

import torch
from torch import nn


class CNN1d(nn.Module):
    """Convolutions over time with the feature bins as input channels:
    ``Conv1d(k) -> BatchNorm -> ReLU -> MaxPool(2) -> Dropout`` blocks, then mean and
    max pooling over time and a linear classifier.

    Args:
        n_features: feature bins per frame (input channels).
        n_classes: output classes.
        channels: output channels of each block.
        kernel_size: temporal kernel in frames.
        dropout: dropout after each block and before the classifier.

    Shapes: ``[batch, n_features, frames]`` -> logits ``[batch, n_classes]``.
    """

    def __init__(self, n_features: int, n_classes: int, channels: tuple[int, ...] = (64, 128, 256), kernel_size: int = 5, dropout: float = 0.3):
        super().__init__()
        blocks, c_in = [], n_features
        for c_out in channels:
            blocks += [
                nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False),
                nn.BatchNorm1d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool1d(2, ceil_mode=True),
                nn.Dropout(dropout),
            ]
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(2 * c_in, n_classes)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.features(feats)  # [B, C, T']
        return self.head(torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1))
