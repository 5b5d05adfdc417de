"""ECAPA-TDNN (Desplanques, Thienpondt and Demuynck, 2020, "ECAPA-TDNN: Emphasized Channel
Attention, Propagation and Aggregation in TDNN Based Speaker Verification", Interspeech;
arXiv:2005.07143), the embedding model of SpeechBrain's emotion-recognition recipe
(``recipes/IEMOCAP/emotion_recognition``), as a backbone with a linear classifier.

The network is SpeechBrain's own implementation (``speechbrain.lobes.models.ECAPA_TDNN``,
Apache-2.0), not a copy: a maintained, widely used implementation of the paper
(SE-Res2Blocks, multi-layer feature aggregation, attentive statistics pooling with global
context) beats a re-implementation. SpeechBrain 1.x installs beside torch 2.11 without
changing it and its import adds about 1 s (scipy); it is the optional extra ``ecapa``
(``pip install 'ser-lightning[ecapa]'``) and is imported only when ``model=ecapa`` is built.

Two deliberate differences from the recipe: the head is a linear layer trained with this
project's cross-entropy (the recipe uses a cosine classifier with an additive angular
margin loss), and the widths are small for a 2-core CPU (see :class:`ECAPA`).
"""

from __future__ import annotations

import torch
from torch import nn

from ser_lightning.errors import ConfigError


#: What a user without the optional extra is told.
MISSING_EXTRA = ("model=ecapa needs SpeechBrain, the optional extra 'ecapa': pip install 'ser-lightning[ecapa]' "
                 "(or pip install 'speechbrain>=1.0,<2')")


def speechbrain_missing() -> str | None:
    """:data:`MISSING_EXTRA` when SpeechBrain is not installed, else ``None``; looks the
    package up without importing it (for the config check before data preparation)."""
    import importlib.util

    try:
        found = importlib.util.find_spec("speechbrain") is not None
    except (ImportError, ValueError):
        found = False
    return None if found else MISSING_EXTRA


def _speechbrain_ecapa():
    """SpeechBrain's ``ECAPA_TDNN`` module (the Python module, not the class).

    Raises:
        ConfigError: SpeechBrain is not installed (the message names the extra).
    """
    import logging
    import os

    # SpeechBrain's import applies "quirks" to the whole process: TF32 matmuls on CUDA and
    # the TorchScript profiling executor off. Keep torch's settings as the user has them
    # (SB_DISABLE_QUIRKS is SpeechBrain's own switch; a value the user set is kept), and
    # keep its INFO lines about them out of our command output.
    os.environ.setdefault("SB_DISABLE_QUIRKS", "allow_tf32,disable_jit_profiling")
    logging.getLogger("speechbrain.utils.quirks").setLevel(logging.WARNING)
    try:
        from speechbrain.lobes.models import ECAPA_TDNN as module
    except ImportError as exc:
        raise ConfigError(f"{MISSING_EXTRA}; import failed: {exc}") from exc
    return module


def whole_clip_attentive_statistics(asp: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """SpeechBrain's ``AttentiveStatisticsPooling`` on unpadded input, without its mask.

    Every clip of a batch here has the same length and no padding mask (training crops or
    pads clips to ``clip_seconds``; the Predictor cuts equal windows), so every frame
    counts: the result equals ``asp(x)`` (checked in tests/test_models.py), but without
    ``length_to_mask``, whose Python-side batch size ``torch.jit.trace`` freezes into the
    graph (a traced model would then refuse any other batch size).

    Args:
        asp: the ``AttentiveStatisticsPooling`` whose layers (``tdnn``, ``tanh``, ``conv``)
            and settings (``global_context``, ``eps``) are used.
        x: ``[batch, channels, frames]``.

    Returns:
        ``[batch, 2 * channels]``: attention-weighted mean and standard deviation.
    """
    frames = x.shape[-1]

    def statistics(weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = (weights * x).sum(dim=2)
        std = torch.sqrt((weights * (x - mean.unsqueeze(2)).pow(2)).sum(dim=2).clamp(asp.eps))
        return mean, std

    if asp.global_context:  # each frame's score also sees the clip's mean and std (the paper's "context")
        mean, std = statistics(torch.full_like(x[:, :1], 1.0 / frames))
        attn = torch.cat([x, mean.unsqueeze(2).expand_as(x), std.unsqueeze(2).expand_as(x)], dim=1)
    else:
        attn = x
    weights = torch.softmax(asp.conv(asp.tanh(asp.tdnn(attn))), dim=2)
    mean, std = statistics(weights)
    return torch.cat([mean, std], dim=1)


class ECAPA(nn.Module):
    """ECAPA-TDNN embedding (SpeechBrain's ``ECAPA_TDNN``) + dropout + linear classifier.

    Defaults are a small ECAPA for a 2-core CPU: channels 128 (the paper's 512-1024) and
    a 384-channel aggregation layer (3x, as the paper's 1536 for 512): 0.54 M parameters
    on 40 MFCCs, 0.56 M on 64 log-mel bins (the paper's C=512 model: about 6 M), a little
    above ``cnn1d`` (0.22-0.49 M).

    Args:
        n_features: feature bins per frame (input channels).
        n_classes: output classes.
        channels: widths of the first TDNN block, the SE-Res2Blocks and the multi-layer
            feature aggregation (last); each SE-Res2Block width divisible by ``res2net_scale``.
        kernel_sizes: temporal kernel of each of those layers, in frames.
        dilations: dilation of each of those layers.
        attention_channels: hidden units of the attentive statistics pooling.
        res2net_scale: groups of each Res2Net block.
        se_channels: bottleneck of each squeeze-excitation block.
        embed_dim: embedding size (``lin_neurons`` in SpeechBrain).
        dropout: dropout on the embedding before the classifier.

    Shapes: ``[batch, n_features, frames]`` -> logits ``[batch, n_classes]``; any number
    of frames >= 9 (the reflect padding of the dilation-4 block needs more frames than 4).

    Raises:
        ConfigError: SpeechBrain is missing, or inconsistent widths (lists of different
            lengths, fewer than 3 layers, a width not divisible by ``res2net_scale``).
    """

    def __init__(self, n_features: int, n_classes: int, channels: tuple[int, ...] = (128, 128, 128, 128, 384),
                 kernel_sizes: tuple[int, ...] = (5, 3, 3, 3, 1), dilations: tuple[int, ...] = (1, 2, 3, 4, 1),
                 attention_channels: int = 64, res2net_scale: int = 8, se_channels: int = 64, embed_dim: int = 128,
                 dropout: float = 0.3):
        super().__init__()
        channels, kernel_sizes, dilations = list(channels), list(kernel_sizes), list(dilations)
        if not (len(channels) == len(kernel_sizes) == len(dilations)) or len(channels) < 3:
            raise ConfigError(f"model.backbone: channels, kernel_sizes and dilations need the same length (>= 3), got "
                              f"{len(channels)}, {len(kernel_sizes)}, {len(dilations)}")
        if any(c % res2net_scale for c in channels[1:-1]):
            raise ConfigError(f"model.backbone.channels {channels[1:-1]} (the SE-Res2Blocks) must be divisible by "
                              f"res2net_scale={res2net_scale}")
        sb = _speechbrain_ecapa()
        self.ecapa = sb.ECAPA_TDNN(n_features, lin_neurons=embed_dim, channels=channels, kernel_sizes=kernel_sizes,
                                   dilations=dilations, attention_channels=attention_channels,
                                   res2net_scale=res2net_scale, se_channels=se_channels)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(embed_dim, n_classes)

    def embed(self, feats: torch.Tensor) -> torch.Tensor:
        """The ECAPA embedding, ``[batch, n_features, frames]`` -> ``[batch, embed_dim]``:
        SpeechBrain's ``ECAPA_TDNN.forward`` on unpadded clips (its layers take channels
        first, so no transpose), with :func:`whole_clip_attentive_statistics` as pooling."""
        e = self.ecapa
        x, outputs = feats, []
        for layer in e.blocks:  # TDNN block, then SE-Res2Blocks (no lengths: every frame counts)
            x = layer(x)
            outputs.append(x)
        x = e.mfa(torch.cat(outputs[1:], dim=1))  # multi-layer feature aggregation
        pooled = whole_clip_attentive_statistics(e.asp, x).unsqueeze(2)  # [B, 2C, 1]
        return e.fc(e.asp_bn(pooled)).squeeze(2)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(feats)))
