"""The backbone registry: a name from ``conf/model`` (``model.backbone.name``) -> an
``nn.Module`` mapping features ``[batch, n_features, frames]`` to logits ``[batch, n_classes]``."""

from __future__ import annotations

from torch import nn

from ser_lightning.errors import ConfigError
from ser_lightning.models.cnn1d import CNN1d
from ser_lightning.models.cnn2d import CNN2d
from ser_lightning.models.conformer import Conformer
from ser_lightning.models.ecapa import ECAPA
from ser_lightning.models.resnet2d import ResNet2d
from ser_lightning.models.ssl import SSLClassifier

#: Backbone name (``model.backbone.name``) -> class taking ``(n_features, n_classes, **kwargs)``.
#: ``ssl``: a pretrained speech encoder and a head (:mod:`ser_lightning.models.ssl`; takes ``encoder=``).
#: ``ecapa`` needs the optional extra ``ecapa`` (SpeechBrain), imported only when built.
BACKBONES: dict[str, type[nn.Module]] = {"cnn1d": CNN1d, "cnn2d": CNN2d, "resnet2d": ResNet2d, "ecapa": ECAPA,
                                         "conformer": Conformer, "ssl": SSLClassifier}


def build_backbone(name: str, n_features: int, n_classes: int, **kwargs) -> nn.Module:
    """Instantiate backbone ``name``.

    Raises:
        ConfigError: unknown name (the allowed names are listed), invalid settings, or
            ``ecapa`` without SpeechBrain installed (the message names the extra).
    """
    if name not in BACKBONES:
        raise ConfigError(f"model.backbone.name='{name}' is unknown; allowed: {sorted(BACKBONES)}")
    return BACKBONES[name](n_features, n_classes, **kwargs)
