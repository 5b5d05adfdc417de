"""A small multi-layer perceptron on standardised utterance functionals (``model=mlp``,
:mod:`ser_lightning.baselines.mlp`); with no hidden layer it is a linear (multinomial
logistic-regression) head. Plain torch, so the inference path loads it without Lightning.
"""

from __future__ import annotations

import torch
from torch import nn

from ser_lightning.errors import ConfigError


class MLPHead(nn.Module):
    """Standardised functionals ``[batch, n_features]`` -> logits ``[batch, n_classes]``.

    ``Linear -> ReLU -> Dropout`` per hidden layer, then a linear output layer; ``hidden=[]``
    is the linear head (softmax regression). No BatchNorm: the model's statistics are the
    standardisation's (training part or speaker), applied before it.

    Args:
        n_features: input size (88 eGeMAPS or 6,373 ComParE functionals).
        n_classes: number of classes (>= 2).
        hidden: hidden layer widths, e.g. ``[256]``; empty for the linear head.
        dropout: dropout probability in [0, 1) on the input of every linear layer after
            the first and, with ``input_dropout``, on the features.
        input_dropout: dropout probability in [0, 1) on the standardised features.
        layer_blocks: an encoder embedding's layout ``{"layers": L, "dim": D, "std_layers": S}``
            (``L`` per-layer means of ``D`` numbers, then ``S`` per-layer deviations: ``S = 1``,
            the last layer's, or ``S = L``) to combine the layers with SUPERB's learnt
            softmax weights (:class:`~ser_lightning.encoders.pooling.LayerWeights`) into
            ``[2 * D]`` before the MLP; ``None``: every number side by side (concatenation).

    Raises:
        ConfigError: a non-positive size, fewer than 2 classes, a probability outside [0, 1),
            ``layer_blocks`` that do not add up to ``n_features``.
    """

    def __init__(self, n_features: int, n_classes: int, hidden: list[int] | tuple[int, ...] = (256,), dropout: float = 0.3,
                 input_dropout: float = 0.0, layer_blocks: dict | None = None):
        super().__init__()
        hidden = [int(h) for h in hidden]
        if n_features < 1 or n_classes < 2 or any(h < 1 for h in hidden):
            raise ConfigError(f"MLP sizes must be positive with at least 2 classes: n_features={n_features}, "
                              f"n_classes={n_classes}, hidden={hidden}")
        for name, p in (("dropout", dropout), ("input_dropout", input_dropout)):
            if not 0.0 <= float(p) < 1.0:
                raise ConfigError(f"model.{name}={p}: a probability in [0, 1)")
        layers: list[nn.Module] = [nn.Dropout(float(input_dropout))] if input_dropout > 0 else []
        width = int(n_features)
        self.layer_blocks = dict(layer_blocks) if layer_blocks else None
        self.layer_weights = None
        if self.layer_blocks:
            from ser_lightning.encoders.pooling import LayerWeights

            n_layers, dim, std_layers = (int(self.layer_blocks[k]) for k in ("layers", "dim", "std_layers"))
            if std_layers not in (1, n_layers) or (n_layers + std_layers) * dim != n_features:
                raise ConfigError(f"layer_blocks {self.layer_blocks} do not describe {n_features} embedding numbers")
            self.layer_weights = LayerWeights(n_layers)
            width = 2 * dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(float(dropout))]
            width = h
        layers.append(nn.Linear(width, int(n_classes)))
        self.layers = nn.Sequential(*layers)
        self.n_features, self.n_classes = int(n_features), int(n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, n_features]`` standardised functionals -> ``[batch, n_classes]`` logits (float32)."""
        x = x.float()
        if self.layer_weights is not None:
            n_layers, dim = int(self.layer_blocks["layers"]), int(self.layer_blocks["dim"])
            means = self.layer_weights(x[:, : n_layers * dim].reshape(len(x), n_layers, dim))
            stds = x[:, n_layers * dim:].reshape(len(x), -1, dim)
            stds = stds[:, 0] if stds.shape[1] == 1 else self.layer_weights(stds)
            x = torch.cat([means, stds], dim=1)
        return self.layers(x)
