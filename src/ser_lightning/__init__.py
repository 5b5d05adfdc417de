"""ser-lightning: speech emotion recognition experiments with Lightning, torchaudio and Hydra."""

__version__ = "0.1.0"
