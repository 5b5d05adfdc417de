"""Inference: the predictor (``predictor``: checkpoint -> class probabilities of any
audio, window by window), its output types (``outputs``), input globbing (``inputs``),
the temperature's application (``calibration``), writers of CSV/JSON/timelines
(``writers``), abstention (``abstention``), the live streaming predictor (``live``) and
export to ONNX/TorchScript (``export``).

May import: :mod:`ser_lightning.models` (not its Lightning ``module``),
:mod:`ser_lightning.data` (not its ``datamodule``), :mod:`ser_lightning.transforms` and
the shared leaves; never ``evaluation``, ``training`` or ``cli``. Importing it never
imports Lightning or W&B (tests/test_architecture.py checks).
"""
