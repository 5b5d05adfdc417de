"""Transforms (``nn.Module`` classes in torchaudio's style, shapes in their docstrings): the
feature front-end (``features``: log-mel, MFCC), augmentation (``augment``: waveform,
SpecAugment, mixup) and speaker normalisation (``speaker_norm``).

May import: the shared leaves only (``labels``, ``errors``, ``metrics``, ``plots``).
"""
