"""Whisper's audio encoder in plain torch, reading a Hugging Face Whisper directory.

Why not ``transformers``' ``WhisperEncoder``: importing ``transformers`` costs about 3 s of
CPU on a 2-core machine, more than a whole ``predict.py`` call on a 3-s clip is allowed
(docs/PERFORMANCE.md); the encoder itself is a few dozen lines (Radford et al., 2022,
"Robust Speech Recognition via Large-Scale Weak Supervision", and OpenAI's
``whisper/model.py``: two convolutions with GELU, sinusoid-initialised positions, pre-norm
transformer blocks, a final LayerNorm). Its parameter names are ``transformers``' own, so the
directory's ``model.safetensors`` loads as published, only the encoder's tensors are read
(the decoder is half the file), and the tests check it equal to ``transformers``'
``WhisperEncoder`` (tests/test_hf_encoders.py). Other families (wav2vec 2.0, HuBERT, WavLM,
data2vec-audio) still load through ``transformers`` (:mod:`ser_lightning.encoders.hf`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ser_lightning.errors import EncoderWeightsError

#: ``config.json`` keys of the encoder and their defaults (openai/whisper-base's values).
CONFIG_KEYS = {"d_model": 512, "encoder_layers": 6, "encoder_attention_heads": 8, "encoder_ffn_dim": 2048, "num_mel_bins": 80,
               "max_source_positions": 1500, "activation_function": "gelu"}


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim, bias=False)  # Whisper's key projection has no bias
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (proj(x).view(b, t, self.heads, d // self.heads).transpose(1, 2) for proj in (self.q_proj, self.k_proj, self.v_proj))
        out = nn.functional.scaled_dot_product_attention(q, k, v)  # scale 1 / sqrt(head dim), no mask: every frame is audio
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: int):
        super().__init__()
        self.self_attn = _Attention(dim, heads)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn)
        self.fc2 = nn.Linear(ffn, dim)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.self_attn_layer_norm(x))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.final_layer_norm(x))))


class WhisperAudioEncoder(nn.Module):
    """Log-mel ``[batch, n_mels, frames]`` (``frames`` even, at most 2 x ``max_source_positions``)
    -> 1 + ``encoder_layers`` hidden states, each ``[batch, frames / 2, d_model]``: the
    convolution output with positions added, each block's output, the last one after the
    final LayerNorm (``transformers``' ``output_hidden_states``). The positional table is
    cut to the input's length (the positions a 30-s input starting with it would use).

    Args:
        config: ``config.json``'s encoder keys (:data:`CONFIG_KEYS`).

    Raises:
        EncoderWeightsError: an activation other than GELU (no Whisper checkpoint has one).
    """

    def __init__(self, config: dict):
        super().__init__()
        c = {k: config.get(k, v) for k, v in CONFIG_KEYS.items()}
        if c["activation_function"] != "gelu":
            raise EncoderWeightsError(f"Whisper encoder with activation '{c['activation_function']}': only gelu is supported")
        dim = int(c["d_model"])
        self.conv1 = nn.Conv1d(int(c["num_mel_bins"]), dim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(dim, dim, kernel_size=3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(int(c["max_source_positions"]), dim)
        self.layers = nn.ModuleList([_Block(dim, int(c["encoder_attention_heads"]), int(c["encoder_ffn_dim"]))
                                     for _ in range(int(c["encoder_layers"]))])
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Raises: ValueError for more frames than the positional table covers."""
        x = nn.functional.gelu(self.conv1(mel))
        x = nn.functional.gelu(self.conv2(x)).transpose(1, 2)
        if x.shape[1] > self.embed_positions.num_embeddings:
            raise ValueError(f"{mel.shape[-1]} log-mel frames: a Whisper encoder takes at most {2 * self.embed_positions.num_embeddings}")
        x = x + self.embed_positions.weight[: x.shape[1]]
        states = [x]
        for block in self.layers:
            x = block(x)
            states.append(x)
        states[-1] = self.layer_norm(x)
        return tuple(states)


def load_whisper_encoder(folder: Path, weights: Path) -> WhisperAudioEncoder:
    """The encoder of a Hugging Face Whisper directory: ``config.json`` and the encoder's
    tensors of ``weights`` (``model.safetensors``: only those are read; ``pytorch_model.bin``:
    the whole file), in eval mode.

    Raises:
        EncoderWeightsError: unreadable files, no encoder tensors, or tensors that do not fit the config.
    """
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise EncoderWeightsError(f"{folder}/config.json cannot be read ({exc})") from exc
    encoder = WhisperAudioEncoder(config)
    state = _encoder_tensors(weights)
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines()[1:4]]
        raise EncoderWeightsError(f"{weights} does not fit its own config.json's Whisper encoder: {' '.join(lines)[:400]}") from exc
    return encoder.eval()


def _encoder_tensors(path: Path) -> dict[str, torch.Tensor]:
    """``{name: tensor}`` of the encoder (prefix ``model.encoder.`` or ``encoder.`` removed)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as fh:
                names = list(fh.keys())
                prefix = next((p for p in ("model.encoder.", "encoder.") if any(n.startswith(p) for n in names)), None)
                if prefix is None:
                    raise EncoderWeightsError(f"{path} holds no Whisper encoder tensors (keys 'model.encoder.*' or 'encoder.*')")
                return {n[len(prefix):]: fh.get_tensor(n) for n in names if n.startswith(prefix)}
        state = torch.load(path, map_location="cpu", weights_only=True)
    except EncoderWeightsError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors and torch raise their own types; all mean "unreadable"
        raise EncoderWeightsError(f"{path} is corrupt or not a weight file ({type(exc).__name__}: {str(exc)[:200]}). "
                                  f"Delete the directory and fetch it again.") from exc
    for prefix in ("model.encoder.", "encoder."):
        sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if sub:
            return sub
    raise EncoderWeightsError(f"{path} holds no Whisper encoder tensors (keys 'model.encoder.*' or 'encoder.*')")


__all__ = ["WhisperAudioEncoder", "load_whisper_encoder"]
