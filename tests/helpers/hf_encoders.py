"""Tiny randomly initialised Hugging Face speech encoders (Whisper, wav2vec 2.0), saved as
model directories (config.json + model.safetensors) as ``save_pretrained`` writes them."""

from __future__ import annotations

from pathlib import Path

import torch

#: Whisper with 2 encoder layers of width 64 (the real base: 6 x 512).
WHISPER_TINY = dict(d_model=64, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                    encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=80, vocab_size=100, max_target_positions=32,
                    pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=3)
#: wav2vec 2.0 with 2 layers of width 64 and the real 7-layer convolution (320-sample stride).
WAV2VEC2_TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                     conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, vocab_size=32)


def tiny_whisper(folder: Path, seed: int = 0, **overrides) -> Path:
    """A random :data:`WHISPER_TINY` ``WhisperModel`` (encoder and decoder) saved to ``folder``."""
    from transformers import WhisperConfig, WhisperModel

    torch.manual_seed(seed)
    WhisperModel(WhisperConfig(**{**WHISPER_TINY, **overrides})).save_pretrained(folder)
    return folder


def tiny_wav2vec2(folder: Path, seed: int = 0, do_normalize: bool = False) -> Path:
    """A random :data:`WAV2VEC2_TINY` ``Wav2Vec2Model`` saved to ``folder`` with its
    ``preprocessor_config.json`` (``do_normalize``)."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(seed)
    Wav2Vec2Model(Wav2Vec2Config(**WAV2VEC2_TINY)).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(do_normalize=do_normalize).save_pretrained(folder)
    return folder
