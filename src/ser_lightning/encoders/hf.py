"""Hugging Face speech encoders: Whisper's encoder and the audio encoders ``transformers`` loads
(wav2vec 2.0, HuBERT, WavLM, data2vec-audio), behind the interface of
:class:`~ser_lightning.encoders.encoder.SSLEncoder` (waveform -> every hidden state).

``transformers`` (an optional extra, ``pip install 'ser-lightning[hf]'``) is the one library
that holds the wav2vec 2.0 family with the weight layout their published checkpoints use
(``config.json`` + ``model.safetensors``): our own copies would have to track every model's
key names and quirks. It is imported only when such an encoder is built. Whisper's encoder,
the one the released model uses, runs in plain torch from the same files
(:mod:`ser_lightning.encoders.whisper`: ``transformers``' import alone costs more than a
prediction), tested equal to ``transformers``' ``WhisperEncoder``.

Names (``model.encoder.name`` / ``features.encoder.name``):

- ``whisper_tiny`` | ``whisper_base`` | ``whisper_small`` | ``whisper_medium`` |
  ``whisper_large_v3``: the encoder of OpenAI's ``openai/whisper-*`` (MIT licence);
- ``hf:<model id or local directory>``: any checkpoint of those families.

Weights are a Hugging Face model directory, found, in this order (never downloaded here:
``python -m ser_lightning.cli.download encoder=<name>`` fetches one):

1. ``weights=<dir>`` (``model.encoder.weights``), or the directory of ``hf:<dir>``;
2. ``$SER_ENCODERS/<name>`` (default ``~/.cache/ser-lightning/encoders/<name>``; an
   ``hf:org/model`` id is stored as ``org--model``);
3. the Hugging Face cache (``huggingface_hub``, offline lookup).

Whisper on short windows: its encoder was trained on 30-s inputs (3000 log-mel frames,
1500 positions). ``window=cut`` runs a window of ``N`` samples as ``N // 160`` frames with
the positional table cut to the window's ``N // 320`` positions (the first rows: the
positions a 30-s input starting with this window would use); ``window=pad30`` pads it with
zeros to 30 s, as Whisper does, and keeps the hidden states of the window's own positions
(about 10x the compute for a 3-s window). Both give the 1 + ``encoder_layers`` hidden states
of ``transformers``' encoder: the convolution output with positions, each block's output,
the last one after the final LayerNorm.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ser_lightning.encoders.frozen import FrozenEncoder
from ser_lightning.errors import ConfigError, EncoderWeightsError

log = logging.getLogger(__name__)

#: ``model.encoder.name`` -> Hugging Face model id of OpenAI's Whisper checkpoints.
WHISPER = {
    "whisper_tiny": "openai/whisper-tiny",
    "whisper_base": "openai/whisper-base",
    "whisper_small": "openai/whisper-small",
    "whisper_medium": "openai/whisper-medium",
    "whisper_large_v3": "openai/whisper-large-v3",
}
#: ``config.json`` model types this module loads.
MODEL_TYPES = ("whisper", "wav2vec2", "hubert", "wavlm", "data2vec-audio")
#: ``window`` settings of a Whisper encoder.
WINDOWS = ("cut", "pad30")
#: Files a model directory's weights may be in, preferred first.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def is_hf_name(name: str) -> bool:
    """Whether ``name`` is one of this module's encoders (``whisper_*`` or ``hf:...``)."""
    return str(name) in WHISPER or str(name).startswith("hf:")


def encoders_home() -> Path:
    """``$SER_ENCODERS``, default ``~/.cache/ser-lightning/encoders`` (read at each call)."""
    return Path(os.environ.get("SER_ENCODERS") or "~/.cache/ser-lightning/encoders").expanduser()


def repo_id(name: str) -> str | None:
    """The Hugging Face model id of ``name`` (``None`` for ``hf:<local directory>``)."""
    if name in WHISPER:
        return WHISPER[name]
    target = name[3:]
    if Path(target).expanduser().is_dir() or target.startswith(("/", ".", "~")):
        return None
    return target


def home_dir(name: str) -> Path:
    """Where ``name`` lives under :func:`encoders_home` (``hf:org/model`` -> ``org--model``)."""
    return encoders_home() / (name if name in WHISPER else name[3:].replace("/", "--"))


def download_command(name: str) -> str:
    return f"python -m ser_lightning.cli.download encoder={name}"


def _has_weights(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any((folder / f).is_file() for f in WEIGHT_FILES)


def _hub_cache_dir(rid: str) -> Path | None:
    """The cached snapshot of ``rid`` in the Hugging Face cache, offline; ``None`` when absent."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        return None
    try:
        folder = Path(snapshot_download(rid, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    return folder if _has_weights(folder) else None


def resolve_model_dir(name: str, weights: str | Path | None = None) -> Path:
    """The model directory of encoder ``name`` (see the module docstring for the order).

    Raises:
        ConfigError: ``name`` is not a Whisper name or ``hf:...``.
        EncoderWeightsError: nothing found; the message names the three places and the command.
    """
    if not is_hf_name(name):
        raise ConfigError(f"'{name}' is not a Hugging Face encoder; allowed: {sorted(WHISPER)} or hf:<model id or directory>")
    tried = []
    if weights:
        folder = Path(weights).expanduser()
        if _has_weights(folder):
            return folder.resolve()
        tried.append(f"weights={folder}")
    rid = repo_id(name)
    if rid is None:  # hf:<directory>
        folder = Path(name[3:]).expanduser()
        if _has_weights(folder):
            return folder.resolve()
        raise EncoderWeightsError(f"encoder {name}: {folder} is not a Hugging Face model directory (it needs config.json and "
                                  f"{' or '.join(WEIGHT_FILES)})")
    home = home_dir(name)
    if _has_weights(home):
        return home.resolve()
    tried.append(f"{home} ($SER_ENCODERS/<name>)")
    cached = _hub_cache_dir(rid)
    if cached is not None:
        return cached
    tried.append(f"the Hugging Face cache ({rid})")
    raise EncoderWeightsError(
        f"encoder {name} ({rid}) not found; looked in {'; '.join(tried)}. Nothing is downloaded during training or "
        f"prediction. Fetch it with: {download_command(name)}, or put a Hugging Face model directory (config.json + "
        f"model.safetensors) at {home}, or pass model.encoder.weights=<dir> (features.encoder.weights for an "
        f"embedding model). See docs/ENCODERS.md.")


def weights_file(folder: Path) -> Path:
    """The weight file of a model directory (``model.safetensors`` preferred)."""
    for f in WEIGHT_FILES:
        if (folder / f).is_file():
            return folder / f
    raise EncoderWeightsError(f"{folder} holds no {' or '.join(WEIGHT_FILES)}")


@dataclass(frozen=True)
class HFSpec:
    """One resolved Hugging Face encoder.

    Attributes:
        name: ``whisper_base`` or ``hf:...``.
        model_type: ``config.json``'s ``model_type`` (one of :data:`MODEL_TYPES`).
        folder: the model directory.
        num_layers: hidden states returned (1 + transformer blocks).
        embed_dim: width of each hidden state.
        params: what identifies the architecture (cache keys, checkpoint records).
        normalize_waveform: zero-mean unit-variance per waveform first (the feature
            extractor's ``do_normalize``; wav2vec 2.0 large models).
        sample_rate: 16000 Hz for all of them.
    """

    name: str
    model_type: str
    folder: Path
    num_layers: int
    embed_dim: int
    params: dict = field(default_factory=dict)
    normalize_waveform: bool = False
    sample_rate: int = 16000


def read_spec(name: str, folder: Path, window: str = "cut") -> HFSpec:
    """The :class:`HFSpec` of model directory ``folder``.

    Raises:
        EncoderWeightsError: an unreadable ``config.json`` or an unsupported model type.
        ConfigError: an unknown ``window``.
    """
    if window not in WINDOWS:
        raise ConfigError(f"model.encoder.window='{window}' is unknown; allowed: {list(WINDOWS)}")
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise EncoderWeightsError(f"{folder}/config.json cannot be read ({exc})") from exc
    kind = config.get("model_type")
    if kind not in MODEL_TYPES:
        raise EncoderWeightsError(f"{folder}: model_type '{kind}' is not a speech encoder this project loads; "
                                  f"allowed: {list(MODEL_TYPES)}")
    if kind == "whisper":
        layers, dim = int(config["encoder_layers"]), int(config["d_model"])
        params = {"model_type": kind, "d_model": dim, "encoder_layers": layers, "num_mel_bins": int(config.get("num_mel_bins", 80)),
                  "window": window}
        normalize = False
    else:
        layers, dim = int(config["num_hidden_layers"]), int(config["hidden_size"])
        params = {"model_type": kind, "hidden_size": dim, "num_hidden_layers": layers}
        pre = folder / "preprocessor_config.json"
        normalize = bool(json.loads(pre.read_text()).get("do_normalize", False)) if pre.is_file() else False
        params["do_normalize"] = normalize
    return HFSpec(name, kind, folder, layers + 1, dim, params, normalize)


def _load_auto_model(folder: Path) -> nn.Module:
    """wav2vec 2.0 / HuBERT / WavLM / data2vec-audio through ``AutoModel`` (offline)."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bar in predict.py's output
    kwargs = {"local_files_only": True}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:  # transformers 5 raised "Kernels are not available" here without it
                model = AutoModel.from_pretrained(folder, use_kernels=False, **kwargs)
            except TypeError:
                model = AutoModel.from_pretrained(folder, **kwargs)
    except (OSError, ValueError, RuntimeError) as exc:
        raise EncoderWeightsError(f"{folder}: transformers could not load it ({type(exc).__name__}: {str(exc)[:300]})") from exc
    return model


def load_hf_model(spec: HFSpec) -> nn.Module:
    """The encoder network of ``spec`` with its weights, in eval mode: Whisper's in plain torch
    (:mod:`ser_lightning.encoders.whisper`), the others through ``transformers``.

    Raises:
        ConfigError: ``transformers`` is not installed for a non-Whisper model (names the extra).
        EncoderWeightsError: unreadable or mismatched weights.
    """
    if spec.model_type == "whisper":
        from ser_lightning.encoders.whisper import load_whisper_encoder

        return load_whisper_encoder(spec.folder, weights_file(spec.folder))
    try:
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"{spec.name} ({spec.model_type}) needs the 'transformers' package: pip install 'ser-lightning[hf]'") from exc
    return _load_auto_model(spec.folder).eval()


class HFEncoder(FrozenEncoder):
    """16 kHz waveforms ``[batch, time]`` -> hidden states ``[batch, layers, frames, dim]``.

    ``layers`` = 1 + transformer blocks (Whisper base: 7 x 512; wav2vec 2.0 base: 13 x 768);
    ``frames``: one per 20 ms (Whisper: ``time // 320``; wav2vec 2.0 family: its
    convolutional stride of 320 samples).

    Args:
        name: ``whisper_*`` or ``hf:<id or directory>``.
        weights: a model directory (else :func:`resolve_model_dir`'s search).
        sha256: the weight file's SHA-256 a checkpoint recorded: a different file of the
            same architecture only warns (Whisper's float16 and float32 copies differ
            within rounding); a different architecture fails to load.
        window: Whisper only, ``cut`` or ``pad30`` (module docstring).
        freeze: ``True``: nothing trains and the encoder stays in eval mode.
        finetune_layers: with ``freeze=False``, how many top blocks train.
        gradient_checkpointing: recompute the fine-tuned blocks' activations in the backward pass.
        config: must be empty (the directory's ``config.json`` is the architecture).

    Raises:
        ConfigError: bad settings, ``transformers`` missing.
        EncoderWeightsError: weights not found, unreadable or of another shape.
    """

    def __init__(self, name: str = "whisper_base", weights: str | None = None, sha256: str | None = None,
                 window: str = "cut", freeze: bool = True, finetune_layers: int = 2, config: dict | None = None,
                 gradient_checkpointing: bool = False):
        super().__init__()
        from ser_lightning.encoders.weights import file_sha256

        if config:
            raise ConfigError(f"model.encoder.config applies to torchaudio encoders; {name}'s architecture is its config.json")
        folder = resolve_model_dir(name, weights)
        self.spec = read_spec(name, folder, window)
        #: the model directory (what a checkpoint records as ``weights``) and its weight file
        self.weights_path, self.weights_file = folder, weights_file(folder)
        self.sha256 = file_sha256(self.weights_file)
        if sha256 and sha256 != self.sha256:
            msg = (f"encoder {name}: weight file {self.weights_file} has SHA-256 {self.sha256[:16]}..., not the "
                   f"{sha256[:16]}... this model was trained with; predictions may differ slightly")
            warnings.warn(msg, stacklevel=2)
            log.warning(msg)
        self.model = load_hf_model(self.spec)
        self.window = window
        if self.spec.model_type == "whisper":
            from ser_lightning.encoders.whisper_features import WhisperLogMel

            self.logmel = WhisperLogMel(self.spec.params["num_mel_bins"])
        blocks = list(self.model.layers if self.spec.model_type == "whisper" else self.model.encoder.layers)
        self._choose_trainable(blocks, freeze, finetune_layers, gradient_checkpointing)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """``[batch, time]`` -> ``[batch, layers, frames, dim]``.

        Raises:
            ValueError: not 2-D; shorter than 400 samples (25 ms); Whisper: longer than 30 s.
        """
        if waves.dim() != 2:
            raise ValueError(f"HFEncoder expects [batch, time] waveforms, got shape {tuple(waves.shape)}")
        if waves.shape[1] < 400:
            raise ValueError(f"HFEncoder needs at least 400 samples (25 ms at 16 kHz), got {waves.shape[1]}")
        waves = waves.float()
        with torch.set_grad_enabled(torch.is_grad_enabled() and bool(self.tuned)):
            if self.spec.model_type == "whisper":
                hidden = self._whisper(waves)
            else:
                if self.spec.normalize_waveform:  # Wav2Vec2FeatureExtractor's do_normalize
                    waves = (waves - waves.mean(dim=1, keepdim=True)) / torch.sqrt(waves.var(dim=1, keepdim=True, unbiased=False) + 1e-7)
                hidden = self.model(waves, output_hidden_states=True).hidden_states
        return torch.stack(tuple(hidden), dim=1)

    def _whisper(self, waves: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from ser_lightning.encoders.whisper_features import CHUNK_SAMPLES, CHUNK_SECONDS

        n = waves.shape[1]
        if n > CHUNK_SAMPLES:
            raise ValueError(f"a Whisper encoder takes at most {CHUNK_SECONDS} s per window, got {n / 16000:.1f} s")
        positions = max(1, (n // 160 + 1) // 2)
        if self.window == "pad30":
            states = self.model(self.logmel(nn.functional.pad(waves, (0, CHUNK_SAMPLES - n))))
            return tuple(h[:, :positions] for h in states)
        return self.model(self.logmel(waves))


__all__ = ["HFEncoder", "HFSpec", "WHISPER", "WINDOWS", "download_command", "encoders_home", "home_dir", "is_hf_name",
           "read_spec", "repo_id", "resolve_model_dir"]
