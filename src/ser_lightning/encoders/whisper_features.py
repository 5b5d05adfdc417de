"""Whisper's log-mel front-end in torchaudio: the input of every Whisper encoder.

OpenAI's ``whisper.audio.log_mel_spectrogram`` (and ``transformers``'
``WhisperFeatureExtractor``, which copies it): 16 kHz waveform -> STFT (400-sample periodic
Hann window = 25 ms, hop 160 = 10 ms, reflect-padded, centred) -> power -> ``n_mels``
Slaney-normalised mel filters on the Slaney mel scale, 0-8 kHz -> ``log10`` (floor 1e-10)
-> clipped to 8 (log10 units = 80 dB) below the clip's maximum -> ``(x + 4) / 4``. The
STFT's last frame is dropped, so ``N`` samples give ``N // 160`` frames.

Whisper pads every input with zeros to 30 s before this. On a 30-s input this module equals
``WhisperFeatureExtractor`` to 1e-4 (tested). On a window alone, every frame but the last
equals the padded computation (the padding adds only values far below the clip's maximum);
the last frame's STFT sees the reflected signal instead of zeros.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

#: Whisper's STFT: 25 ms window, 10 ms hop at 16 kHz.
N_FFT, HOP, SAMPLE_RATE = 400, 160, 16000
#: Whisper's fixed input: 30 s, i.e. 3000 log-mel frames, 1500 encoder positions.
CHUNK_SECONDS = 30
CHUNK_SAMPLES = CHUNK_SECONDS * SAMPLE_RATE


class WhisperLogMel(nn.Module):
    """``[batch, time]`` 16 kHz waveforms -> ``[batch, n_mels, time // 160]`` log-mel.

    Args:
        n_mels: 80 (Whisper tiny to large-v2) or 128 (large-v3); the checkpoint's
            ``num_mel_bins``.

    Raises:
        ValueError: (forward) input not 2-D or shorter than one hop (160 samples).
    """

    def __init__(self, n_mels: int = 80):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, f_min=0.0, f_max=SAMPLE_RATE / 2, n_mels=n_mels,
            power=2.0, norm="slaney", mel_scale="slaney", center=True, pad_mode="reflect")

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        if waves.dim() != 2:
            raise ValueError(f"WhisperLogMel expects [batch, time] waveforms, got shape {tuple(waves.shape)}")
        if waves.shape[1] < HOP:
            raise ValueError(f"WhisperLogMel needs at least {HOP} samples (10 ms), got {waves.shape[1]}")
        spec = self.mel(waves.float())[..., :-1]
        log_spec = spec.clamp_min(1e-10).log10()
        peak = log_spec.amax(dim=(1, 2), keepdim=True)  # per clip, as the feature extractor's batched path
        return (torch.maximum(log_spec, peak - 8.0) + 4.0) / 4.0


__all__ = ["CHUNK_SAMPLES", "CHUNK_SECONDS", "HOP", "WhisperLogMel"]
