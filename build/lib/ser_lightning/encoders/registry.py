"""The encoder registry: ``model.encoder.name`` -> a torchaudio pipeline bundle.

Each entry is one of ``torchaudio.pipelines``' self-supervised bundles: its architecture
(the bundle's ``_params``, given to ``torchaudio.models.wav2vec2_model`` or
``wavlm_model``), whether the bundle layer-normalises the waveform first, and the weight
file the bundle would download: ``https://download.pytorch.org/torchaudio/models/<file>``
(``torchaudio.pipelines._wav2vec2.utils._get_state_dict``), cached by
``torch.hub.load_state_dict_from_url`` as ``<torch hub dir>/checkpoints/<file>``, where the
hub dir is ``$TORCH_HOME/hub`` (default ``~/.cache/torch/hub``; ``torch.hub.get_dir``).
Nothing here downloads: :func:`download_command` says how to fetch a file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ser_lightning.errors import ConfigError

#: Where torchaudio's bundles download their weights from (torchaudio 2.x).
BASE_URL = "https://download.pytorch.org/torchaudio/models/"

#: ``model.encoder.name`` -> torchaudio.pipelines bundle attribute.
BUNDLES = {
    "wav2vec2_base": "WAV2VEC2_BASE",
    "wav2vec2_large_lv60k": "WAV2VEC2_LARGE_LV60K",
    "wav2vec2_xlsr_300m": "WAV2VEC2_XLSR_300M",
    "hubert_base": "HUBERT_BASE",
    "hubert_large": "HUBERT_LARGE",
    "wavlm_base": "WAVLM_BASE",
    "wavlm_base_plus": "WAVLM_BASE_PLUS",
    "wavlm_large": "WAVLM_LARGE",
}

#: Keys of a bundle's architecture that ``model.encoder.config`` may override (a smaller
#: encoder of the same family, e.g. for tests); dropout and layer-drop settings included.
ARCHITECTURE_KEYS = (
    "extractor_mode", "extractor_conv_layer_config", "extractor_conv_bias", "encoder_embed_dim",
    "encoder_projection_dropout", "encoder_pos_conv_kernel", "encoder_pos_conv_groups", "encoder_num_layers",
    "encoder_num_heads", "encoder_attention_dropout", "encoder_ff_interm_features", "encoder_ff_interm_dropout",
    "encoder_dropout", "encoder_layer_norm_first", "encoder_layer_drop", "encoder_max_distance", "encoder_num_buckets",
)


@dataclass(frozen=True)
class EncoderSpec:
    """One registered encoder.

    Attributes:
        name: the registry name (``wavlm_base_plus``).
        bundle: the ``torchaudio.pipelines`` attribute (``WAVLM_BASE_PLUS``).
        family: ``"Wav2Vec2"`` (wav2vec 2.0 and HuBERT) or ``"WavLM"``.
        params: keyword arguments of the family's torchaudio factory (the architecture).
        normalize_waveform: the bundle layer-normalises each waveform before the model
            (the large and XLS-R models).
        filename: the weight file's name (``wavlm_base_plus.pth``).
        sample_rate: the rate the encoder was trained on, Hz (16000 for all of them).
    """

    name: str
    bundle: str
    family: str
    params: dict
    normalize_waveform: bool
    filename: str
    sample_rate: int = 16000

    @property
    def url(self) -> str:
        return BASE_URL + self.filename

    @property
    def num_layers(self) -> int:
        return int(self.params["encoder_num_layers"])

    @property
    def embed_dim(self) -> int:
        return int(self.params["encoder_embed_dim"])

    def cache_path(self) -> Path:
        """The file ``torch.hub.load_state_dict_from_url`` would download to (reads
        ``$TORCH_HOME`` at each call)."""
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints" / self.filename

    def parameter_count(self) -> int:
        """Parameters of the architecture (counted on the ``meta`` device: no memory)."""
        import torch

        with torch.device("meta"):
            model = build_architecture(self)
        return sum(p.numel() for p in model.parameters())

    def approx_bytes(self) -> int:
        """About the weight file's size: 4 bytes (float32) per parameter. The files are
        float32 state dicts, so this is within a few per cent of the published size."""
        return 4 * self.parameter_count()


def encoder_names() -> list[str]:
    return sorted(BUNDLES)


def encoder_spec(name: str, config: dict | None = None) -> EncoderSpec:
    """The registry entry ``name``, its architecture overridden by ``config``.

    Args:
        name: one of :data:`BUNDLES`.
        config: ``{architecture key: value}`` (:data:`ARCHITECTURE_KEYS`) replacing the
            bundle's; ``None``: the bundle's architecture.

    Raises:
        ConfigError: an unknown name or architecture key.
    """
    if name not in BUNDLES:
        raise ConfigError(f"model.encoder.name='{name}' is unknown; allowed: {encoder_names()}")
    import torchaudio.pipelines

    bundle = getattr(torchaudio.pipelines, BUNDLES[name])
    params = dict(bundle._params)
    params["aux_num_out"] = None
    if config:
        unknown = sorted(set(config) - set(ARCHITECTURE_KEYS))
        if unknown:
            raise ConfigError(f"model.encoder.config: unknown keys {unknown}; allowed: {list(ARCHITECTURE_KEYS)}")
        params.update({k: ([tuple(c) for c in v] if k == "extractor_conv_layer_config" else v) for k, v in config.items()})
    return EncoderSpec(name, BUNDLES[name], bundle._model_type, params, bool(bundle._normalize_waveform),
                       Path(bundle._path).name, int(bundle.sample_rate))


def build_architecture(spec: EncoderSpec):
    """A randomly initialised ``torchaudio.models.Wav2Vec2Model`` of ``spec``'s architecture."""
    import torchaudio.models

    factory = torchaudio.models.wavlm_model if spec.family == "WavLM" else torchaudio.models.wav2vec2_model
    return factory(**spec.params)


def download_command(name: str) -> str:
    """The shell command that puts ``name``'s weight file into the cache."""
    return f"python -m ser_lightning.cli.download encoder={name}   (or: make encoder ENCODER={name})"


def human_bytes(n: int) -> str:
    """``n`` bytes as ``"378 MB"`` (decimal units)."""
    if n < 1000:
        return f"{n} B"
    k = min(int(math.log(n, 1000)), 4)
    return f"{n / 1000 ** k:.0f} {['B', 'kB', 'MB', 'GB', 'TB'][k]}"
