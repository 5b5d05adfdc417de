"""1-D CNN over feature frames (the Conv1D models of earlier SER projects, on MFCCs)."""

from __future__ import annotations

import torch
from torch import nn

from ser_lightning.errors import ConfigError
from ser_lightning.models.pooling import AttentiveStatsPool


#: ``model.backbone.pooling`` values of :class:`CNN1d`.
POOLINGS = ("meanmax", "attention")


class CNN1d(nn.Module):
    """Convolutions over time with the feature bins as input channels:
    ``Conv1d(k) -> BatchNorm -> ReLU -> MaxPool(2) -> Dropout`` blocks, then pooling over
    time and a linear classifier.

    Args:
        n_features: feature bins per frame (input channels).
        n_classes: output classes.
        channels: output channels of each block.
        kernel_size: temporal kernel in frames.
        dropout: dropout after each block and before the classifier.
        pooling: ``meanmax`` (mean and max over time, concatenated) or ``attention``
            (:class:`~ser_lightning.models.pooling.AttentiveStatsPool`).

    Shapes: ``[batch, n_features, frames]`` -> logits ``[batch, n_classes]``.

    Raises:
        ConfigError: an unknown ``pooling``.
    """

    def __init__(self, n_features: int, n_classes: int, channels: tuple[int, ...] = (64, 128, 256), kernel_size: int = 5, dropout: float = 0.3,
                 pooling: str = "meanmax"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"model.backbone.pooling='{pooling}' is unknown; allowed: {list(POOLINGS)}")
        self.pooling = pooling
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
        self.attention = AttentiveStatsPool(c_in) if pooling == "attention" else None
        self.head = nn.Linear(2 * c_in, n_classes)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.features(feats)  # [B, C, T']
        pooled = self.attention(x) if self.attention is not None else torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)
        return self.head(pooled)
