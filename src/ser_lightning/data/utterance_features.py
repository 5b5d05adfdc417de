"""What a model on utterance functionals reads: one vector per file, from openSMILE
(``features=egemaps|compare``: eGeMAPS / ComParE functionals) or from a frozen pretrained
encoder (``features=encoder``: :class:`~ser_lightning.encoders.embedding.EncoderEmbedding`).

Both are an *utterance feature extractor*: ``kind``, ``n_features``, ``cache_name`` and
``version`` (the per-file cache's folder and key, :mod:`ser_lightning.data.feature_cache`),
``__call__(wave, sample_rate) -> [n_features]``, ``names()`` and ``record()`` (the
``features`` entry a checkpoint stores, from which :func:`utterance_features` rebuilds it).
The SVM baseline, the MLP / linear head, ``eval.py`` and ``predict.py`` take either.
"""

from __future__ import annotations

from ser_lightning.errors import ConfigError
from ser_lightning.transforms.opensmile_features import FEATURE_SETS, extract, feature_names, n_features, opensmile_version

#: ``features.kind`` values a functionals model takes.
KINDS = (*FEATURE_SETS, "encoder")


class OpenSmileFunctionals:
    """openSMILE utterance functionals of set ``kind`` (``egemaps``: 88, ``compare``: 6,373).

    Raises:
        ConfigError: unknown set, or ``opensmile`` not installed.
    """

    level = "functionals"
    workers = None  # openSMILE runs outside the GIL: one thread per CPU

    def __init__(self, kind: str):
        self.kind = kind
        self.n_features = n_features(kind, "functionals")
        self.cache_name = f"{kind}-functionals"

    @property
    def version(self) -> str:
        return f"{self.kind}:functionals:{opensmile_version()}"

    def __call__(self, wave, sample_rate: int):
        return extract(wave, sample_rate, self.kind, "functionals")

    def names(self) -> list[str]:
        return list(feature_names(self.kind))

    def record(self) -> dict:
        return {"kind": self.kind, "level": "functionals", "names": self.names()}


def utterance_features(features: dict, device: str = "cpu"):
    """The extractor of a ``features`` config or of a checkpoint's ``features`` record.

    Args:
        features: ``{"kind": "egemaps" | "compare"}`` or ``{"kind": "encoder", "encoder":
            {name, weights, sha256, window, stats, chunk_seconds}}``.
        device: where an encoder runs.

    Raises:
        ConfigError: an unknown kind or settings.
        EncoderWeightsError: an encoder's weights missing or unreadable.
    """
    kind = features.get("kind")
    if kind in FEATURE_SETS:
        return OpenSmileFunctionals(kind)
    if kind == "encoder":
        from ser_lightning.encoders.embedding import EncoderEmbedding

        settings = dict(features.get("encoder") or {})
        return EncoderEmbedding(**settings, device=device)
    raise ConfigError(f"features={kind}: a model on utterance functionals takes one of {list(KINDS)}")


def encoder_record(extractor) -> dict:
    """``features`` entry of a checkpoint for an encoder embedding (no per-column names: thousands)."""
    return {"kind": "encoder", "level": "functionals", "encoder": extractor.record()}


__all__ = ["KINDS", "OpenSmileFunctionals", "encoder_record", "utterance_features"]
