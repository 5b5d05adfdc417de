"""Training: the pipeline behind train.py (``pipeline``), callbacks (``callbacks``),
W&B set-up and offline-run reading (``wandb_setup``), W&B media (``wandb_media``) and
config checks (``config_validation``).

May import: :mod:`ser_lightning.evaluation` (the best checkpoint is scored through the
same path as eval.py) and everything below it; never ``cli``.
"""
