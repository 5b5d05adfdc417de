"""A pretrained speech encoder with a small head (``model=ssl``): the SUPERB recipe.

waveform ``[batch, 1, time]`` (``features=waveform``) -> the encoder
(:func:`~ser_lightning.encoders.encoder.build_encoder`: torchaudio's wav2vec 2.0 / HuBERT /
WavLM, or Whisper / ``hf:...`` through ``transformers``; every layer's hidden states) -> per-layer statistics or frames -> learnable
softmax weights over the layers (:class:`~ser_lightning.encoders.pooling.LayerWeights`,
SUPERB: Yang et al., 2021) -> pooling over time -> BatchNorm -> MLP -> logits.

Two heads (``model.backbone.pooling``):

- ``stats`` (default): each layer's mean and standard deviation over the window's frames,
  ``[layers, 2 * dim]``, then the layer-weighted sum and the MLP. A frozen encoder's
  representation is then 2 x 12 x 768 float16 numbers (37 kB) per window, so the
  embedding cache holds a corpus in little space.
- ``attentive``: the layer-weighted frames, then attentive statistics pooling
  (:class:`~ser_lightning.models.pooling.AttentiveStatsPool`, Okabe et al., 2018) and the MLP;
  the cache keeps every frame (``[layers, frames, dim]``, about 2.9 MB per 3-s window for a
  base-size encoder).

A frozen encoder's representation is rounded to float16 on every path (cached or not),
so a window gets the same logits from a fresh computation and from the cache.

The checkpoint does not carry a frozen encoder's weights: it records the weight file's
path and SHA-256 (``hyper_parameters.encoder``), and loading finds the file there or in the
torch hub cache and checks its hash (a clear error otherwise). Fine-tuned layers and the
head are stored in the checkpoint.
"""

from __future__ import annotations

import logging
import time

import torch
from torch import nn

from ser_lightning.encoders.cache import EmbeddingCache
from ser_lightning.encoders.encoder import build_encoder
from ser_lightning.encoders.pooling import LayerWeights
from ser_lightning.errors import ConfigError
from ser_lightning.models.pooling import AttentiveStatsPool

log = logging.getLogger(__name__)

POOLINGS = ("stats", "attentive")
#: How the layers are combined: SUPERB's learnt softmax weights, or every layer's statistics side by side.
LAYER_MODES = ("weighted", "concat")
#: Keys of ``model.encoder`` that are not :class:`SSLEncoder` arguments.
HEAD_KEYS = ("lr", "cache", "cache_dir")


class SSLClassifier(nn.Module):
    """Waveforms ``[batch, 1, time]`` (16 kHz) -> logits ``[batch, n_classes]``.

    Args:
        n_features: must be 1 (``features.kind=waveform``).
        n_classes: classes.
        encoder: ``model.encoder``: :func:`~ser_lightning.encoders.encoder.build_encoder`'s
            arguments (``name``, ``weights``, ``sha256``, ``config``, ``window``, ``freeze``,
            ``finetune_layers``, ``gradient_checkpointing``) plus ``lr`` (learning rate of fine-tuned layers),
            ``cache`` (use the embedding cache with a frozen encoder) and ``cache_dir``.
        pooling: ``"stats"`` or ``"attentive"`` (see the module docstring).
        hidden: width of the MLP's hidden layer.
        dropout: dropout before each linear layer of the MLP.
        attention_hidden: hidden channels of attentive pooling's scorer.
        layers: ``weighted`` (SUPERB's softmax weights over the layers, ``[2 * dim]`` into
            the MLP) or ``concat`` (every layer's statistics side by side, ``[layers * 2 *
            dim]``; ``pooling=stats`` only).

    Raises:
        ConfigError: ``n_features`` other than 1, an unknown pooling or layer mode, bad encoder settings.
        EncoderWeightsError: the weight file is missing, corrupt or of another architecture.
    """

    def __init__(self, n_features: int, n_classes: int, encoder: dict | None = None, pooling: str = "stats",
                 hidden: int = 256, dropout: float = 0.2, attention_hidden: int = 64, layers: str = "weighted"):
        super().__init__()
        if n_features != 1:
            raise ConfigError("model=ssl takes the waveform: use features=waveform (conf/model/ssl.yaml selects it)")
        if pooling not in POOLINGS:
            raise ConfigError(f"model.backbone.pooling='{pooling}' is unknown; allowed: {list(POOLINGS)}")
        if layers not in LAYER_MODES or (layers == "concat" and pooling != "stats"):
            raise ConfigError(f"model.backbone.layers='{layers}': allowed {list(LAYER_MODES)} (concat with pooling=stats only)")
        settings = dict(encoder or {})
        self.encoder_lr = settings.get("lr")
        cache, cache_dir = settings.get("cache", False), settings.get("cache_dir")
        self.encoder = build_encoder(**{k: v for k, v in settings.items() if k not in HEAD_KEYS})
        self.pooling = pooling
        n_layers, dim = self.encoder.num_layers, self.encoder.dim
        self.layers = layers
        self.layer_weights = LayerWeights(n_layers) if layers == "weighted" else None
        width = 2 * dim * (n_layers if layers == "concat" else 1)
        self.attention = AttentiveStatsPool(dim, attention_hidden) if pooling == "attentive" else None
        # BatchNorm first: each pooled feature at zero mean and unit variance over the
        # training windows (encoder layers differ in scale by orders of magnitude); its
        # statistics are also what AdaBN (adapt=bn) re-estimates on a new speaker.
        self.head = nn.Sequential(nn.BatchNorm1d(width), nn.Dropout(dropout), nn.Linear(width, hidden), nn.ReLU(),
                                  nn.Dropout(dropout), nn.Linear(hidden, n_classes))
        self.cache: EmbeddingCache | None = None
        #: what the last :meth:`fill_cache` did (``metrics.json: embedding_cache``)
        self.last_fill: dict | None = None
        if cache and cache_dir and self.encoder.freeze:
            self.cache = EmbeddingCache(cache_dir, self.encoder.spec.name, self.encoder.sha256,
                                        "stats" if pooling == "stats" else "frames", self.encoder.spec.params)

    def encoder_record(self, settings: dict) -> dict:
        """``settings`` (``model.encoder``) with the weight file's absolute path and
        SHA-256 filled in: what the checkpoint stores to find and check the file again."""
        return {**settings, "weights": str(self.encoder.weights_path), "sha256": self.encoder.sha256}

    def weights_from_file(self) -> list[str]:
        """State-dict keys not stored in a checkpoint (the frozen encoder parameters,
        loaded from the weight file)."""
        return [f"encoder.{n}" for n in self.encoder.frozen_parameter_names()]

    def parameter_groups(self, lr: float) -> list[dict]:
        """Optimiser groups: the head at ``lr``, fine-tuned encoder layers at ``model.encoder.lr``
        (default ``lr / 20``); frozen parameters are left out."""
        head = [p for n, p in self.named_parameters() if not n.startswith("encoder.")]
        groups = [{"params": head, "lr": lr}]
        tuned = [p for p in self.encoder.parameters() if p.requires_grad]
        if tuned:
            groups.append({"params": tuned, "lr": float(self.encoder_lr or lr / 20)})
        return groups

    def _represent(self, waves: torch.Tensor) -> torch.Tensor:
        """``[batch, time]`` -> ``[batch, layers, 2 * dim]`` (stats) or ``[batch, layers, frames, dim]``."""
        hidden = self.encoder(waves)
        if self.pooling == "stats":
            rep = torch.cat([hidden.mean(dim=2), hidden.std(dim=2, unbiased=False)], dim=-1)
        else:
            rep = hidden
        if self.encoder.freeze:  # the cache's precision on every path
            rep = rep.to(torch.float16).float()
        return rep

    def represent(self, waves: torch.Tensor) -> torch.Tensor:
        """:meth:`_represent` through the embedding cache when it is on (misses are
        computed in one batch and stored)."""
        if self.cache is None:
            return self._represent(waves)
        rows = waves.detach().cpu().numpy()
        keys = [EmbeddingCache.key(r) for r in rows]
        found = [self.cache.get(k) for k in keys]
        missing = [i for i, f in enumerate(found) if f is None]
        if missing:
            with torch.no_grad():
                fresh = self._represent(waves[missing])
            for i, value in zip(missing, fresh, strict=True):
                found[i] = value
            try:
                for i in missing:
                    self.cache.put(keys[i], found[i])
            except OSError as exc:
                log.warning("embedding cache %s cannot be written (%s); continuing without it", self.cache.folder, exc)
                self.cache = None
        return torch.stack([f.to(waves.device).float() for f in found])

    @torch.no_grad()
    def fill_cache(self, batches, device: torch.device | str = "cpu") -> dict:
        """Compute and store the representation of every window in ``batches`` (an
        iterable of ``[n, time]`` float32 tensors) the cache lacks, on ``device``.

        Returns:
            ``{"windows", "computed", "seconds"}``; nothing happens without a cache.
        """
        if self.cache is None:
            return {"windows": 0, "computed": 0, "seconds": 0.0}
        start, misses, n = time.perf_counter(), self.cache.misses, 0
        for batch in batches:
            self.represent(batch.to(device))
            n += batch.shape[0]
        info = {"windows": n, "computed": self.cache.misses - misses, "seconds": time.perf_counter() - start}
        self.last_fill = info
        log.info("embedding cache %s: %d windows, %d computed now, %.1f s", self.cache.folder, n, info["computed"], info["seconds"])
        return info

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, 1, time]`` -> ``[batch, n_classes]``."""
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"SSLClassifier expects [batch, 1, time] waveforms, got shape {tuple(x.shape)}")
        rep = self.represent(x[:, 0])
        mixed = self.layer_weights(rep) if self.layer_weights is not None else rep.flatten(1)  # [B, 2D], [B, F, D] or [B, L * 2D]
        if self.attention is not None:
            mixed = self.attention(mixed.transpose(1, 2))
        return self.head(mixed)


def cache_stats(model: nn.Module) -> dict | None:
    """``{"hits", "misses", "bytes", "folder"}`` of an :class:`SSLClassifier`'s cache, else ``None``."""
    cache = getattr(model, "cache", None)
    if cache is None:
        return None
    return {"hits": cache.hits, "misses": cache.misses, "bytes": cache.size_bytes(), "folder": str(cache.folder)}


__all__ = ["POOLINGS", "SSLClassifier", "cache_stats"]
