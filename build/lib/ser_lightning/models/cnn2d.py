"""2-D CNN over a log-mel spectrogram or MFCC image."""

from __future__ import annotations

import torch
from torch import nn


class CNN2d(nn.Module):
    """Stacked ``Conv2d(3x3) -> BatchNorm -> ReLU -> MaxPool(2)`` blocks, then mean and
    max pooling over frequency and time, dropout and a linear classifier.

    Args:
        n_features: feature bins per frame (mel bands or MFCCs).
        n_classes: output classes.
        channels: output channels of each block.
        dropout: dropout before the classifier.

    Shapes: ``[batch, n_features, frames]`` -> logits ``[batch, n_classes]``.
    """

    def __init__(self, n_features: int, n_classes: int, channels: tuple[int, ...] = (16, 32, 64, 128), dropout: float = 0.3):
        super().__init__()
        blocks, c_in = [], 1
        for c_out in channels:
            blocks += [
                nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * c_in, n_classes))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.features(feats.unsqueeze(1))  # [B, C, F', T']
        x = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
        return self.head(x)
