"""The encoder module: a torchaudio wav2vec 2.0 / HuBERT / WavLM model with its weights,
frozen or with its top transformer layers fine-tuned, returning every layer's output;
:func:`build_encoder` picks it or the Hugging Face family (:mod:`ser_lightning.encoders.hf`:
Whisper, ``hf:...``) from the name."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ser_lightning.encoders.frozen import FrozenEncoder
from ser_lightning.encoders.registry import build_architecture, encoder_spec
from ser_lightning.encoders.weights import load_weights, resolve_weights
from ser_lightning.errors import ConfigError


class SSLEncoder(FrozenEncoder):
    """16 kHz waveforms ``[batch, time]`` -> hidden states ``[batch, layers, frames, dim]``.

    ``layers`` is the number of transformer layers (12 for base, 24 for large models); each
    is that layer's output (``Wav2Vec2Model.extract_features``); ``frames`` is one per 20 ms
    (the convolutional feature encoder's stride of 320 samples; 149 for 3 s). Models whose
    bundle normalises the waveform (large, XLS-R) get ``layer_norm`` over each waveform
    first, as ``bundle.get_model()`` does.

    Args:
        name: registry name (:data:`~ser_lightning.encoders.registry.BUNDLES`).
        weights: the weight file (``None``: the bundle's file in the torch hub cache).
        sha256: the file's expected SHA-256 (a checkpoint's record); ``None``: any file.
        config: architecture overrides (a smaller encoder of the family, for tests).
        freeze: ``True``: no parameter of the encoder trains, and it stays in eval mode
            (no dropout), so its output is a function of the waveform (cacheable).
        finetune_layers: with ``freeze=False``, how many of the top transformer layers
            train (1 to ``layers``); everything below them stays frozen.
        gradient_checkpointing: recompute the fine-tuned layers' activations in the
            backward pass instead of storing them (less memory, about 30 % more time;
            ``torch.utils.checkpoint``); for GPU fine-tuning.

    Raises:
        ConfigError: unknown name or architecture key, ``finetune_layers`` out of range.
        EncoderWeightsError: missing, corrupt or mismatched weight file
            (:mod:`ser_lightning.encoders.weights`).
    """

    def __init__(self, name: str = "wavlm_base_plus", weights: str | None = None, sha256: str | None = None,
                 config: dict | None = None, freeze: bool = True, finetune_layers: int = 2,
                 gradient_checkpointing: bool = False):
        super().__init__()
        self.spec = encoder_spec(name, config)
        if not freeze and not 1 <= int(finetune_layers) <= self.spec.num_layers:
            raise ConfigError(f"model.encoder.finetune_layers={finetune_layers}: must be between 1 and the encoder's "
                              f"{self.spec.num_layers} layers (or set model.encoder.freeze=true)")
        path = resolve_weights(self.spec, weights, fallback_to_cache=sha256 is not None)
        self.model = build_architecture(self.spec)
        self.sha256 = load_weights(self.model, self.spec, path, sha256)
        self.weights_path: Path = path
        self._choose_trainable(list(self.model.encoder.transformer.layers), freeze, finetune_layers, gradient_checkpointing)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """``[batch, time]`` float -> ``[batch, layers, frames, dim]``.

        Raises:
            ValueError: not 2-D, or shorter than the encoder's 400-sample receptive field.
        """
        if waves.dim() != 2:
            raise ValueError(f"SSLEncoder expects [batch, time] waveforms, got shape {tuple(waves.shape)}")
        if waves.shape[1] < 400:
            raise ValueError(f"SSLEncoder needs at least 400 samples (25 ms at 16 kHz), got {waves.shape[1]}")
        waves = waves.float()
        if self.spec.normalize_waveform:
            waves = nn.functional.layer_norm(waves, waves.shape[-1:])
        with torch.set_grad_enabled(torch.is_grad_enabled() and bool(self.tuned)):
            hidden, _ = self.model.extract_features(waves)
        return torch.stack(hidden, dim=1)


def build_encoder(name: str = "wavlm_base_plus", window: str = "cut", **settings) -> nn.Module:
    """The encoder ``name``: :class:`~ser_lightning.encoders.hf.HFEncoder` for ``whisper_*`` and
    ``hf:...``, else :class:`SSLEncoder` (torchaudio bundles). Both map ``[batch, time]`` 16 kHz
    waveforms to ``[batch, layers, frames, dim]`` and expose ``spec`` (``name``, ``params``),
    ``num_layers``, ``dim``, ``sha256``, ``weights_path``, ``freeze`` and ``frozen_parameter_names()``.

    Args:
        window: Whisper's window mode (``cut`` or ``pad30``); other encoders take only ``cut``.
        **settings: the encoder class's other arguments.

    Raises:
        ConfigError: ``window=pad30`` for a non-Whisper encoder, bad settings.
        EncoderWeightsError: weights missing, unreadable or of another architecture.
    """
    from ser_lightning.encoders.hf import HFEncoder, is_hf_name

    if is_hf_name(name):
        return HFEncoder(name, window=window, **settings)
    if window != "cut":
        raise ConfigError(f"model.encoder.window={window} applies to Whisper encoders only, not {name}")
    return SSLEncoder(name, **settings)
