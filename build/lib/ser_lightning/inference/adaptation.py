"""Unsupervised test-time adaptation: BatchNorm statistics re-estimated on target audio.

AdaBN (Li, Wang, Shi, Hou and Liu, 2018, "Adaptive Batch Normalization for practical
domain adaptation", Pattern Recognition 80; arXiv:1603.04779, "Revisiting Batch
Normalization For Practical Domain Adaptation", 2016): a network trained with
BatchNorm is moved to a new domain by replacing every BatchNorm layer's running mean and
variance with the mean and variance of that layer's inputs over unlabelled data of the
new domain; the weights (convolutions, BatchNorm's scale and shift) are kept. No label and
no gradient is used.

Here the "new domain" is a speaker (or a corpus) and its data are the windows of a few
enrolment recordings, never the recording being scored
(:meth:`ser_lightning.inference.predictor.Predictor.adapted`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from ser_lightning.errors import ConfigError

#: ``adapt=`` of eval.py, predict.py and stream.py: ``none`` (the trained model as it is)
#: or ``bn`` (BatchNorm statistics re-estimated on enrolment recordings, AdaBN).
ADAPT = ("none", "bn")


def check_adapt(adapt: str) -> str:
    """``adapt`` when it is one of :data:`ADAPT`.

    Raises:
        ConfigError: any other value.
    """
    if adapt not in ADAPT:
        raise ConfigError(f"adapt='{adapt}' is unknown; allowed: {list(ADAPT)}")
    return adapt


class _LayerDone(Exception):
    """Raised by a hook to end a forward pass once the layer of interest has been seen."""


@torch.inference_mode()
def reestimate_batchnorm(model: torch.nn.Module, batches: Callable[[], Iterable[torch.Tensor]]) -> int:
    """Set every BatchNorm layer's ``running_mean`` / ``running_var`` (in place) to the
    mean and (population) variance of its inputs over all of ``batches``, per channel.

    This is Li et al.'s AdaBN, layer by layer, as their Algorithm 1 states it: a layer's
    statistics are those of its inputs with every earlier layer already adapted and the
    whole model in eval mode (dropout off, no batch statistics). Each layer takes one
    pass over the data (stopped at that layer), accumulated in float64, so the result is
    exact and does not depend on the batch size or on which windows share a batch (the
    cumulative average of ``torch.optim.swa_utils.update_bn`` weights batches, not windows,
    and normalises later layers with batch statistics). Costs about half a forward pass per
    BatchNorm layer: cheap for a few enrolment recordings.

    Args:
        model: a network in which BatchNorm layers (``track_running_stats=True``) are not
            yet folded into convolutions; modified in place.
        batches: called once per pass; yields the model's inputs, e.g. features
            ``[batch, n_features, frames]``. It must yield the same data each time.

    Returns:
        The number of examples (windows) per pass.

    Raises:
        ConfigError: the model has no BatchNorm layer with running statistics (e.g.
            ``model=conformer model.backbone.conv_norm=group``): AdaBN would change nothing,
            so ``adapt=bn`` is refused rather than reported as an adaptation.
        ValueError: ``batches`` yields nothing.
    """
    model.eval()
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not norms:
        raise ConfigError(f"adapt=bn: the model ({type(model).__name__}) has no BatchNorm layer whose statistics could be "
                          f"re-estimated, so AdaBN would change nothing; use adapt=none")
    order: list[torch.nn.Module] = []
    hooks = [m.register_forward_pre_hook(lambda mod, args: None if any(mod is o for o in order) else order.append(mod)) for m in norms]
    n_examples = 0
    try:
        for batch in batches():  # one full pass: the layers in the order the forward pass meets them
            model(batch)
            n_examples += len(batch)
    finally:
        for h in hooks:
            h.remove()
    if n_examples == 0:
        raise ValueError("no input to re-estimate the BatchNorm statistics on")
    for layer in order:
        mean, var = _input_moments(model, layer, batches)
        layer.running_mean.copy_(mean.to(layer.running_mean))
        layer.running_var.copy_(var.to(layer.running_var))
    return n_examples


def _input_moments(model: torch.nn.Module, layer: torch.nn.Module,
                   batches: Callable[[], Iterable[torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and population variance (float64, ``[channels]``) of ``layer``'s
    input over all of ``batches``; each forward pass stops at ``layer``."""
    total = torch.zeros(layer.num_features, dtype=torch.float64)
    squares = torch.zeros_like(total)
    count = 0

    def accumulate(mod, args):
        nonlocal count
        flat = args[0].detach().transpose(0, 1).reshape(args[0].shape[1], -1).double().cpu()  # [channels, batch * positions]
        total.add_(flat.sum(dim=1))
        squares.add_((flat * flat).sum(dim=1))
        count += flat.shape[1]
        raise _LayerDone

    hook = layer.register_forward_pre_hook(accumulate)
    try:
        for batch in batches():
            try:
                model(batch)
            except _LayerDone:
                pass
    finally:
        hook.remove()
    mean = total / count
    return mean, (squares / count - mean * mean).clamp_min(0.0)
