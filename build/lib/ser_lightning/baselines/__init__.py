"""Classic baselines on expert acoustic features: openSMILE eGeMAPS / ComParE utterance
functionals with a standardised SVM (``svm``), run by ``train.py model=svm`` into the same
run directory, ``metrics.json`` and results records as the neural recipes.

May import: :mod:`ser_lightning.evaluation` and everything below it (``inference``,
``models``, ``data``, ``transforms``, shared leaves); never ``training`` or ``cli``
(``training`` calls it).
"""
