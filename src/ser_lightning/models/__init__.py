"""Models: the backbones (``backbones``: the registry; ``cnn1d``, ``cnn2d``, ``resnet2d``,
``ecapa``, ``conformer``),
the LightningModule that trains them (``module``), checkpoint loading without Lightning
(``checkpoint``) and the probability-average ensemble (``ensemble``).

May import: :mod:`ser_lightning.transforms` and the shared leaves (``labels``,
``errors``, ``metrics``, ``plots``); never ``data``, ``inference``, ``evaluation``,
``training`` or ``cli``. Only ``module`` imports Lightning.
"""
