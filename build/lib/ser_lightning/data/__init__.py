"""Data: corpus readers (``corpora``), speaker-independent splits (``splits``) and the
split recorded with a run (``recorded_split``), the usable-file filter (``usable``),
audio decoding (``audio``), block streaming of long files (``streaming``), voice
activity detection (``vad``), the decoded-waveform cache (``cache``), the dataset and
Lightning DataModule (``dataset``, ``datamodule``), corpus download (``download``,
``archive``) and exploration plots (``explore``).

May import: :mod:`ser_lightning.transforms` (the DataModule builds the feature
front-end and augmentation), :mod:`ser_lightning.encoders` and the shared leaves; never ``models``, ``inference``,
``evaluation``, ``training`` or ``cli``. Only ``datamodule`` imports Lightning.
"""
