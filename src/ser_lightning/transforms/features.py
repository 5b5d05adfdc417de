"""The feature front-end: waveforms -> log-mel spectrogram or MFCC, as an ``nn.Module``.

For the openSMILE descriptor kinds (``egemaps``, ``compare``) the descriptors are
computed once per file on the CPU (:mod:`ser_lightning.transforms.lld_windows`, cached by
:mod:`ser_lightning.data.feature_cache`) and windows of them reach this module instead of
waveforms: it then only normalises them.

It runs on whatever device the batch is on (the DataModule calls it in
``on_after_batch_transfer``), and the same module, rebuilt from the checkpoint's
settings, serves prediction and export.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torchaudio
from torch import nn

from ser_lightning.errors import ConfigError

FEATURE_KINDS = ("logmel", "mfcc", "seed", "waveform", "egemaps", "compare")
#: openSMILE low-level descriptor kinds (eGeMAPS v02: 25, ComParE 2016: 65 per 10 ms frame):
#: their input is ``[batch, n_descriptors, frames]`` windows of the file's descriptors.
LLD_KINDS = {"egemaps": 25, "compare": 65}
NORMALIZATIONS = ("utterance", "speaker", "none")
#: Rows of the ``seed`` stack per frame besides the MFCCs and mel bands: ZCR, 12 chroma, RMS.
SEED_EXTRA_ROWS = 1 + 12 + 1


@dataclass
class FeatureConfig:
    """Settings of :class:`FeatureExtractor` (all stored in the checkpoint).

    Attributes:
        kind: ``"logmel"`` (log-mel spectrogram in dB), ``"mfcc"``, or ``"seed"``: the
            frame-level stack of earlier Conv1D SER projects, rows in this order:
            zero-crossing rate (1), chroma from the STFT (12), MFCC (``n_mfcc``), RMS
            energy (1), log-mel spectrogram (``n_mels``), all from one STFT;
            ``"egemaps"`` / ``"compare"``: openSMILE's 25 / 65 low-level descriptors per
            10 ms frame (Eyben et al. 2016; Schuller et al. 2016), computed per file
            before the windows are cut (hop fixed at 10 ms, ``hop_length`` is set to
            ``sample_rate / 100``; the STFT settings are unused).
        sample_rate: input rate in Hz.
        n_fft: FFT size in samples (400 = 25 ms at 16 kHz).
        win_length: window length in samples.
        hop_length: hop in samples (160 = 10 ms at 16 kHz).
        n_mels: mel bands.
        n_mfcc: cepstral coefficients kept (``kind="mfcc"``).
        f_min, f_max: mel filterbank range in Hz (``f_max=None``: Nyquist).
        top_db: dynamic range kept below each utterance's peak, in dB.
        normalize: ``"utterance"`` (zero mean, unit variance per feature over time,
            per utterance), ``"speaker"`` (the same per speaker, over all of that
            speaker's frames: :mod:`ser_lightning.transforms.speaker_norm`; this module then returns
            un-normalised features and the caller applies the speaker's statistics) or
            ``"none"``.
    """

    kind: str = "logmel"
    sample_rate: int = 16000
    n_fft: int = 400
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 64
    n_mfcc: int = 40
    f_min: float = 0.0
    f_max: float | None = None
    top_db: float = 80.0
    normalize: str = "utterance"

    @classmethod
    def from_dict(cls, cfg: dict) -> "FeatureConfig":
        """Build from a mapping, ignoring keys that are not settings.

        Raises:
            ValueError: unknown ``kind`` or ``normalize``.
        """
        names = {f.name for f in fields(cls)}
        out = cls(**{k: v for k, v in dict(cfg).items() if k in names})
        if out.kind not in FEATURE_KINDS:
            raise ConfigError(f"features.kind='{out.kind}' is unknown; allowed: {list(FEATURE_KINDS)}")
        if out.normalize not in NORMALIZATIONS:
            raise ConfigError(f"features.normalize='{out.normalize}' is unknown; allowed: {list(NORMALIZATIONS)}")
        if out.kind in LLD_KINDS:
            out.hop_length = out.sample_rate // 100  # openSMILE's frame step: 10 ms
            out.win_length = max(out.win_length, int(round(0.064 * out.sample_rate)))  # shortest input openSMILE fills
        if out.kind == "waveform" and out.normalize != "none":
            raise ConfigError(f"features.kind=waveform passes the samples to a speech encoder unchanged: features.normalize "
                              f"must be none, got '{out.normalize}' (the encoder normalises its input itself)")
        return out

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def n_features(self) -> int:
        """Feature dimension per frame."""
        if self.kind == "seed":
            return SEED_EXTRA_ROWS + self.n_mfcc + self.n_mels
        if self.kind == "waveform":
            return 1
        if self.kind in LLD_KINDS:
            return LLD_KINDS[self.kind]
        return self.n_mfcc if self.kind == "mfcc" else self.n_mels

    @property
    def is_lld(self) -> bool:
        """Whether the input is openSMILE descriptor windows (``egemaps``, ``compare``), not waveforms."""
        return self.kind in LLD_KINDS

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for ``n_samples`` (centred STFT; ``waveform``: the samples;
        descriptors: ``n_samples // hop_length``, the frames of a window)."""
        if self.kind == "waveform":
            return n_samples
        if self.kind in LLD_KINDS:
            return n_samples // self.hop_length
        return n_samples // self.hop_length + 1


def power_to_db(power: torch.Tensor, top_db: float | None) -> torch.Tensor:
    """``10 log10(power)`` clamped to ``top_db`` below each example's own peak.

    Unlike ``torchaudio.transforms.AmplitudeToDB`` on a ``[batch, freq, time]`` tensor
    (which clamps against the peak of the whole batch), the floor here is per example,
    so an utterance's features do not depend on what else is in its batch.

    Args:
        power: ``[batch, freq, time]`` power spectrogram.
        top_db: dynamic range in dB, or ``None`` for no clamp.

    Returns:
        ``[batch, freq, time]`` in dB.
    """
    db = 10.0 * torch.log10(power.clamp_min(1e-10))
    if top_db is not None:
        db = torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - top_db)
    return db


def chroma_filterbank(sample_rate: int, n_fft: int, n_chroma: int = 12, tuning_hz: float = 440.0,
                      f_min: float = 32.7, width_semitones: float = 1.0) -> torch.Tensor:
    """Weights ``[n_chroma, n_fft // 2 + 1]`` mapping STFT bins to pitch classes (C = 0).

    Each bin above ``f_min`` (Hz; default C1) contributes to the pitch classes with a
    Gaussian weight of its circular distance in semitones (std ``width_semitones / 2``),
    normalised to sum 1 per bin: a simpler form of ``librosa.filters.chroma`` (Ellis),
    which also spreads each bin over neighbouring classes. Bins below ``f_min`` (and DC)
    get no weight.
    """
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    midi = 12 * torch.log2(freqs.clamp_min(1e-6) / tuning_hz) + 69  # A4 = MIDI 69
    classes = torch.arange(n_chroma, dtype=torch.float64)[:, None] * (12 / n_chroma)
    dist = torch.remainder(midi[None, :] - classes + 6, 12) - 6  # circular, in [-6, 6)
    weights = torch.exp(-0.5 * (dist / (width_semitones / 2)) ** 2)
    weights = weights / weights.sum(dim=0, keepdim=True)
    weights[:, freqs < f_min] = 0.0
    return weights.float()


def frame_signal(waves: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """``[batch, time]`` -> ``[batch, frames, n_fft]`` frames aligned with a centred STFT
    (``n_fft // 2`` zeros padded at both ends; ``time // hop + 1`` frames)."""
    padded = nn.functional.pad(waves, (n_fft // 2, n_fft // 2))
    return padded.unfold(-1, n_fft, hop_length)


class FeatureExtractor(nn.Module):
    """Waveforms ``[batch, time]`` -> features ``[batch, n_features, frames]``.

    Log-mel: torchaudio ``MelSpectrogram`` (power 2, Hann window, centred frames, HTK mel
    scale without filter normalisation: torchaudio's defaults) -> dB per example. MFCC: a type-II
    orthonormal DCT of the log-mel bands (as ``torchaudio.transforms.MFCC`` computes
    it), so both share one STFT.
    Waveform (``kind="waveform"``): the samples unchanged, ``[batch, 1, time]``.
    Descriptors (``kind="egemaps"|"compare"``): the input is already ``[batch,
    n_descriptors, frames]`` (windows of openSMILE's per-file descriptors,
    :mod:`ser_lightning.transforms.lld_windows`); only the normalisation is applied.
    Per-utterance normalisation subtracts each feature's mean over time and divides by
    its standard deviation (cepstral mean and variance normalisation). With
    ``normalize="speaker"`` or ``"none"`` the output is not normalised here.
    """

    def __init__(self, config: FeatureConfig | dict):
        super().__init__()
        self.config = config if isinstance(config, FeatureConfig) else FeatureConfig.from_dict(config)
        c = self.config
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=c.sample_rate,
            n_fft=c.n_fft,
            win_length=c.win_length,
            hop_length=c.hop_length,
            f_min=c.f_min,
            f_max=c.f_max,
            n_mels=c.n_mels,
            power=2.0,
        )
        if c.kind == "seed":
            self.register_buffer("chroma_fb", chroma_filterbank(c.sample_rate, c.n_fft), persistent=False)
        if c.kind in ("mfcc", "seed"):
            dct = torchaudio.functional.create_dct(c.n_mfcc, c.n_mels, norm="ortho")  # [n_mels, n_mfcc]
            self.register_buffer("dct", dct, persistent=False)

    @property
    def n_features(self) -> int:
        return self.config.n_features

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """Args: waves ``[batch, time]`` float (descriptor kinds: ``[batch, n_features,
        frames]``). Returns ``[batch, n_features, frames]``.

        Raises:
            ValueError: input that is not 2-D (descriptor kinds: not ``[batch, n_features, frames]``).
        """
        if self.config.is_lld:
            if waves.dim() != 3 or waves.shape[1] != self.config.n_features:
                raise ValueError(f"features.kind={self.config.kind} expects [batch, {self.config.n_features}, frames] "
                                 f"descriptor windows, got shape {tuple(waves.shape)}")
            feats = waves.float()
            if self.config.normalize == "utterance":
                feats = (feats - feats.mean(dim=-1, keepdim=True)) / (feats.std(dim=-1, keepdim=True) + 1e-5)
            return feats
        if waves.dim() != 2:
            raise ValueError(f"FeatureExtractor expects [batch, time] waveforms, got shape {tuple(waves.shape)}")
        if self.config.kind == "waveform":
            return waves.float()[:, None, :]
        # The STFT stays in float32 under autocast: half precision loses the low bands.
        with torch.autocast(device_type=waves.device.type, enabled=False):
            if self.config.kind == "seed":
                feats = self._seed(waves.float())
            else:
                feats = power_to_db(self.mel(waves.float()), self.config.top_db)
            if self.config.kind == "mfcc":
                feats = torch.matmul(feats.transpose(-1, -2), self.dct).transpose(-1, -2)
            if self.config.normalize == "utterance":
                mean = feats.mean(dim=-1, keepdim=True)
                std = feats.std(dim=-1, keepdim=True)
                feats = (feats - mean) / (std + 1e-5)
        return feats

    def _seed(self, waves: torch.Tensor) -> torch.Tensor:
        """The ``seed`` stack ``[batch, 14 + n_mfcc + n_mels, frames]`` from one STFT.

        ZCR: fraction of sign changes per frame; chroma: :func:`chroma_filterbank` of the
        power spectrum, divided by each frame's largest class (as ``librosa.feature.chroma_stft``,
        ``norm=inf``); RMS: root mean square of each frame's samples (librosa's
        ``feature.rms`` on the waveform); MFCC and log-mel as for ``mfcc`` and ``logmel``.
        """
        c = self.config
        power = self.mel.spectrogram(waves)  # [B, n_fft // 2 + 1, frames], the one STFT
        logmel = power_to_db(self.mel.mel_scale(power), c.top_db)
        mfcc = torch.matmul(logmel.transpose(-1, -2), self.dct).transpose(-1, -2)
        chroma = torch.matmul(self.chroma_fb, power)
        chroma = chroma / chroma.amax(dim=1, keepdim=True).clamp_min(1e-10)
        frames = frame_signal(waves, c.n_fft, c.hop_length)  # [B, frames, n_fft]
        signs = torch.signbit(frames)
        zcr = (signs[..., 1:] != signs[..., :-1]).float().mean(dim=-1)[:, None, :]
        rms = frames.pow(2).mean(dim=-1).sqrt()[:, None, :]
        return torch.cat([zcr, chroma, mfcc, rms, logmel], dim=1)
