"""What every speech encoder family shares: which of its top blocks train (the rest frozen and
in eval mode, so a frozen encoder's output is a function of the waveform) and which of its
state a checkpoint leaves to the weight file. :class:`~ser_lightning.encoders.encoder.SSLEncoder`
(torchaudio) and :class:`~ser_lightning.encoders.hf.HFEncoder` (Hugging Face) build on it."""

from __future__ import annotations

import functools

import torch
from torch import nn

from ser_lightning.errors import ConfigError


class FrozenEncoder(nn.Module):
    """What both encoder families share (:class:`SSLEncoder`, :class:`~ser_lightning.encoders.hf.HFEncoder`):
    which top blocks of ``self.model`` train, the rest frozen and in eval mode, and the state a
    checkpoint leaves to the weight file. Subclasses set ``self.spec`` and ``self.model`` and call
    :meth:`_choose_trainable`."""

    def _choose_trainable(self, blocks: list[nn.Module], freeze: bool, finetune_layers: int, gradient_checkpointing: bool) -> None:
        """Freeze ``self.model`` except, with ``freeze=False``, the top ``finetune_layers`` of ``blocks``
        (recomputed in the backward pass with ``gradient_checkpointing``).

        Raises:
            ConfigError: ``finetune_layers`` outside ``[1, len(blocks)]`` with ``freeze=False``.
        """
        self.freeze = bool(freeze)
        if not self.freeze and not 1 <= int(finetune_layers) <= len(blocks):
            raise ConfigError(f"model.encoder.finetune_layers={finetune_layers}: must be between 1 and the encoder's "
                              f"{len(blocks)} layers (or set model.encoder.freeze=true)")
        self.finetune_layers = 0 if self.freeze else int(finetune_layers)
        self.model.requires_grad_(False)
        self.tuned = list(blocks)[len(blocks) - self.finetune_layers:] if self.finetune_layers else []
        for block in self.tuned:
            block.requires_grad_(True)
            if gradient_checkpointing:
                block.forward = functools.partial(_checkpointed, block, block.forward)
        self.train(False)

    @property
    def num_layers(self) -> int:
        return self.spec.num_layers

    @property
    def dim(self) -> int:
        return self.spec.embed_dim

    def train(self, mode: bool = True) -> "FrozenEncoder":
        """Frozen parts stay in eval mode (no dropout, no layer drop); fine-tuned blocks follow ``mode``."""
        super().train(False)
        for block in self.tuned:
            block.train(mode)
        self.training = mode
        return self

    def frozen_parameter_names(self) -> list[str]:
        """Names (relative to this module) of the state that never trains: frozen parameters and
        buffers (from the weight file or rebuilt, never stored in a checkpoint)."""
        trained = {n for n, p in self.named_parameters() if p.requires_grad}
        return [n for n in self.state_dict() if n not in trained]


def _checkpointed(layer: nn.Module, forward, *args, **kwargs):
    if layer.training and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(forward, *args, use_reentrant=False, **kwargs)
    return forward(*args, **kwargs)
