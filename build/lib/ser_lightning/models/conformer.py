"""Conformer encoder (Gulati et al., 2020, "Conformer: Convolution-augmented Transformer for
Speech Recognition", Interspeech; arXiv:2005.08100) over feature frames, pooled over time.

The encoder layers are ``torchaudio.models.Conformer``'s (already a dependency): each is
feed-forward (half step) -> multi-head self-attention -> convolution module (pointwise,
GLU, depthwise, BatchNorm, SiLU, pointwise) -> feed-forward (half step) -> LayerNorm.
torchaudio's layers have no positional encoding (the paper's relative one is left out);
order reaches the model through the front-end and depthwise convolutions, and the pooling
over time ignores it anyway.
"""

from __future__ import annotations

import torch
from torch import nn

from ser_lightning.errors import ConfigError
from ser_lightning.models.pooling import AttentiveStatsPool

#: ``model.backbone.pooling`` values of :class:`Conformer`.
POOLINGS = ("attention", "mean")
#: ``model.backbone.conv_norm`` values: the convolution module's normalisation.
CONV_NORMS = ("batch", "group")


class Conformer(nn.Module):
    """Convolutional subsampling -> Conformer layers -> pooling over time -> linear.

    The front-end is two ``Conv1d(kernel 3, stride 2) -> SiLU`` layers over the frames
    (feature bins as channels): 4x fewer time steps (a 3-s clip at the 10 ms hop: 301
    frames -> 76), as the paper's 2-D convolutional subsampling, but 1-D to stay small.
    Defaults (``d_model`` 96, 4 heads, ``ffn_dim`` 192, 3 layers, kernel 15) give 0.48 M
    parameters on 40 MFCCs, 0.49 M on 64 log-mel bins, comparable to ``cnn1d`` (0.22-0.49 M); the
    paper's smallest model (Conformer-S) has 10 M.

    Every clip of a batch has the same length here (training crops/pads clips to
    ``clip_seconds``, the Predictor cuts equal windows), so no padding mask is used.

    Args:
        n_features: feature bins per frame.
        n_classes: output classes.
        d_model: width of the encoder (attention dimension).
        num_heads: attention heads (must divide ``d_model``).
        ffn_dim: hidden units of each feed-forward module.
        num_layers: Conformer layers.
        kernel_size: depthwise convolution kernel in (subsampled) time steps; odd.
        dropout: dropout inside the layers and before the classifier.
        pooling: ``attention`` (:class:`~ser_lightning.models.pooling.AttentiveStatsPool`)
            or ``mean`` (mean and standard deviation over time).
        conv_norm: ``batch`` (BatchNorm, the paper's; test-time adaptation ``adapt=bn``
            re-estimates it) or ``group`` (GroupNorm with one group; no BatchNorm at all).

    Shapes: ``[batch, n_features, frames]`` -> logits ``[batch, n_classes]``; any number
    of frames >= 1.

    Raises:
        ConfigError: unknown ``pooling`` or ``conv_norm``, ``num_heads`` not dividing
            ``d_model``, or an even ``kernel_size``.
    """

    def __init__(self, n_features: int, n_classes: int, d_model: int = 96, num_heads: int = 4, ffn_dim: int = 192,
                 num_layers: int = 3, kernel_size: int = 15, dropout: float = 0.1, pooling: str = "attention",
                 conv_norm: str = "batch"):
        super().__init__()
        from torchaudio.models import Conformer as TorchaudioConformer

        if pooling not in POOLINGS:
            raise ConfigError(f"model.backbone.pooling='{pooling}' is unknown; allowed: {list(POOLINGS)}")
        if conv_norm not in CONV_NORMS:
            raise ConfigError(f"model.backbone.conv_norm='{conv_norm}' is unknown; allowed: {list(CONV_NORMS)}")
        if d_model % num_heads:
            raise ConfigError(f"model.backbone.num_heads={num_heads} must divide d_model={d_model}")
        if kernel_size % 2 == 0:
            raise ConfigError(f"model.backbone.kernel_size={kernel_size} must be odd (same-length depthwise convolution)")
        self.subsample = nn.Sequential(
            nn.Conv1d(n_features, d_model, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv1d(d_model, d_model, 3, stride=2, padding=1), nn.SiLU(),
        )
        self.encoder = TorchaudioConformer(input_dim=d_model, num_heads=num_heads, ffn_dim=ffn_dim, num_layers=num_layers,
                                           depthwise_conv_kernel_size=kernel_size, dropout=dropout,
                                           use_group_norm=conv_norm == "group")
        self.attention = AttentiveStatsPool(d_model) if pooling == "attention" else None
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * d_model, n_classes)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.subsample(feats).permute(2, 0, 1)  # [T', B, D], the layers' time-first layout
        # The layers directly, without torchaudio's Conformer.forward: its lengths -> mask
        # step (.item()) would freeze a traced graph's length; no clip here is padded.
        for layer in self.encoder.conformer_layers:
            x = layer(x, None)
        x = x.permute(1, 2, 0)  # [B, D, T']
        if self.attention is not None:
            pooled = self.attention(x)
        else:
            pooled = torch.cat([x.mean(dim=2), x.std(dim=2, unbiased=False)], dim=1)
        return self.head(self.dropout(pooled))
