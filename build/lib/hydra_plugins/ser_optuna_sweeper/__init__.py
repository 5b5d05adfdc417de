"""A Hydra sweeper running an Optuna study (``hydra/sweeper=ser_optuna``).

Hydra's own ``hydra-optuna-sweeper`` pins ``optuna<3`` (1.2.0 and 1.3.0), which
resolves to optuna 2.10 with SQLAlchemy 2.1 on Python 3.11; this plugin keeps the
same command line (``python train.py -m hparams_search=optuna``) on current optuna.
"""
