"""Evaluation: scoring labelled utterances under test-time statistics modes
(``scoring``), a trained run's best checkpoint after fit and again later (``run_scoring``:
scores, calibration, ``rescore``), a checkpoint on a corpus (``evaluate``, behind eval.py), ensembles of runs
(``ensemble``), calibration metrics and diagrams (``calibration``), multirun
aggregation (``aggregate``), bootstrap intervals (``bootstrap``), nested recipe
selection (``selection``) and the results protocols and table (``results``, behind
scripts/results.py). The metrics themselves (UAR, WAR, F1) are the shared leaf
:mod:`ser_lightning.metrics`, which the LightningModule uses too.

May import: :mod:`ser_lightning.inference` and everything below it (``models``,
``data``, ``transforms``, shared leaves); never ``training`` or ``cli``.
"""
