"""ser-lightning: speech emotion recognition experiments with Lightning, torchaudio and Hydra.

The package is grouped by task; imports run downwards (tests/test_architecture.py
checks): ``cli`` -> ``training`` -> ``evaluation`` -> ``inference`` -> ``models``,
``data`` -> ``transforms``, ``encoders`` -> the shared leaves ``labels``, ``errors``, ``metrics``
and ``plots``. Each folder's ``__init__`` says what it holds and what it may import.
"""

__version__ = "0.1.0"
