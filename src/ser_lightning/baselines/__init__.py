"""Classic baselines on expert acoustic features: openSMILE eGeMAPS / ComParE utterance
functionals with a standardised SVM (``svm``, ``train.py model=svm``) or a linear / small
MLP head trained by the Lightning loop (``mlp``, ``train.py model=mlp``), sharing their data,
standardisation and scoring (``functionals``), into the same run directory,
``metrics.json`` and results records as the neural recipes.

May import: :mod:`ser_lightning.evaluation` and everything below it (``inference``,
``models``, ``data``, ``transforms``, shared leaves); never ``training`` or ``cli``
(``training`` calls it).
"""
