"""Pretrained speech encoders (wav2vec 2.0, HuBERT, WavLM) as a front-end: the bundle
registry (``registry``: a name -> torchaudio's pipeline bundle, its architecture, the URL and
the cache path of its weight file), the weight file itself (``weights``: found, checked,
hashed, loaded; never downloaded here), the encoder module (``encoder``: 16 kHz waveform
-> every transformer layer's hidden states, frozen or with its top layers fine-tuned),
the learnable layer weights (``pooling``, as in SUPERB) and the on-disk embedding cache of
a frozen encoder (``cache``). :mod:`ser_lightning.models.ssl` composes them with a head;
``python -m ser_lightning.cli.download encoder=<name>`` fetches a weight file.

May import: the shared leaves only (``labels``, ``errors``, ``metrics``, ``plots``); it sits
beside :mod:`ser_lightning.transforms` (layer 1), below ``models`` and ``data``.
"""
