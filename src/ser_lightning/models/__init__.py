"""Models: the backbones (``backbones``: the registry; ``cnn1d``, ``cnn2d``, ``resnet2d``,
``ecapa``, ``conformer``; ``ssl``: a pretrained speech encoder from :mod:`ser_lightning.encoders`
with a head), the heads on openSMILE functionals (``svm``, ``mlp``: plain torch),
the LightningModule that trains them (``module``), checkpoint loading without Lightning
(``checkpoint``) and the probability-average ensemble (``ensemble``).

May import: :mod:`ser_lightning.transforms`, :mod:`ser_lightning.encoders` and the shared leaves (``labels``,
``errors``, ``metrics``, ``plots``); never ``data``, ``inference``, ``evaluation``,
``training`` or ``cli``. Only ``module`` imports Lightning.
"""
