"""Device-side augmentation as ``nn.Module``s, applied to training batches only.

Every module draws its random values per example (never one draw for the whole batch)
and works on the batch where it is (CPU or GPU). The DataModule applies the waveform
chain before the feature front-end and the spectrogram chain after it, only while the
trainer is training: validation, test and prediction data are never augmented.
"""

from __future__ import annotations

import inspect
from fractions import Fraction

import torch
import torchaudio
from torch import nn

from ser_lightning.errors import ConfigError


def _apply_mask(batch_size: int, p: float, device: torch.device) -> torch.Tensor:
    """``[batch]`` bool: which examples an augmentation with probability ``p`` touches."""
    return torch.rand(batch_size, device=device) < p


def _uniform(batch_size: int, low: float, high: float, device: torch.device) -> torch.Tensor:
    return low + (high - low) * torch.rand(batch_size, device=device)


class AdditiveNoise(nn.Module):
    """Add white Gaussian noise at a random signal-to-noise ratio per example.

    SNR (dB) = 10 log10(P_signal / P_noise), with P the mean power of the example.

    Args:
        snr_db: ``(low, high)`` range of the SNR in dB, drawn uniformly per example.
        p: probability that an example is augmented.
    """

    def __init__(self, snr_db: tuple[float, float] = (10.0, 40.0), p: float = 0.5):
        super().__init__()
        self.snr_db = tuple(snr_db)
        self.p = p

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """``[batch, time]`` -> ``[batch, time]``."""
        b = waves.shape[0]
        snr = _uniform(b, *self.snr_db, waves.device)
        signal_power = waves.pow(2).mean(dim=-1).clamp_min(1e-10)
        noise_std = torch.sqrt(signal_power / (10.0 ** (snr / 10.0)))
        noise = torch.randn_like(waves) * noise_std[:, None]
        on = _apply_mask(b, self.p, waves.device)[:, None]
        return torch.where(on, waves + noise, waves)


class RandomGain(nn.Module):
    """Scale each example by a random gain in dB (amplitude factor ``10^(g/20)``).

    Args:
        gain_db: ``(low, high)`` in dB, drawn uniformly per example.
        p: probability that an example is augmented.
    """

    def __init__(self, gain_db: tuple[float, float] = (-6.0, 6.0), p: float = 0.5):
        super().__init__()
        self.gain_db = tuple(gain_db)
        self.p = p

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """``[batch, time]`` -> ``[batch, time]``."""
        b = waves.shape[0]
        gain = 10.0 ** (_uniform(b, *self.gain_db, waves.device) / 20.0)
        gain = torch.where(_apply_mask(b, self.p, waves.device), gain, torch.ones_like(gain))
        return waves * gain[:, None]


def _crop_or_pad(waves: torch.Tensor, length: int, random_offset: bool) -> torch.Tensor:
    """``[batch, n]`` -> ``[batch, length]``: a crop (random start per example when
    ``random_offset``, else from the start) or zero padding at the end."""
    b, n = waves.shape
    if n < length:
        return nn.functional.pad(waves, (0, length - n))
    if n == length or not random_offset:
        return waves[:, :length]
    start = (torch.rand(b, device=waves.device) * (n - length + 1)).long().clamp_max(n - length)
    idx = start[:, None] + torch.arange(length, device=waves.device)[None, :]
    return torch.gather(waves, 1, idx)


def _ratio(value: float, max_denominator: int = 20) -> tuple[int, int]:
    """Small-integer ``(p, q)`` with ``p / q ~= value``: resampling by small integers keeps
    torchaudio's sinc kernel short (rates with no common factor make it huge)."""
    frac = Fraction(value).limit_denominator(max_denominator)
    return frac.numerator, frac.denominator


class TimeShift(nn.Module):
    """Shift each example in time by a random amount, filling with zeros (no wrap-around).

    Args:
        max_shift_seconds: shifts are drawn uniformly in ``[-max, +max]`` seconds.
        sample_rate: Hz.
        p: probability that an example is shifted.
    """

    def __init__(self, max_shift_seconds: float = 0.25, sample_rate: int = 16000, p: float = 0.5):
        super().__init__()
        self.max_shift = int(round(max_shift_seconds * sample_rate))
        self.p = p

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """``[batch, time]`` -> ``[batch, time]``."""
        b, n = waves.shape
        shift = ((torch.rand(b, device=waves.device) * 2 - 1) * self.max_shift).round().long()
        shift = torch.where(_apply_mask(b, self.p, waves.device), shift, torch.zeros_like(shift))
        src = torch.arange(n, device=waves.device)[None, :] - shift[:, None]  # output t reads input t - shift
        valid = (src >= 0) & (src < n)
        return torch.where(valid, torch.gather(waves, 1, src.clamp(0, n - 1)), torch.zeros_like(waves))


class SpeedPerturb(nn.Module):
    """Speed perturbation (Ko et al., 2015, Interspeech): play each example at a random
    factor from ``factors`` (tempo and pitch change together), by resampling.

    A factor ``f`` resamples from ``f * k`` to ``k`` (``torchaudio.functional.resample``,
    on the batch's device), so ``n`` samples become ``n / f``; the result is cropped at a
    random offset per example (``f < 1``) or zero-padded (``f > 1``) back to ``n``.
    Examples are grouped by factor, one resampling call per group.

    Args:
        factors: speed factors to draw from uniformly, e.g. ``(0.9, 1.0, 1.1)``.
        p: probability that an example is perturbed at all.
    """

    def __init__(self, factors: tuple[float, ...] = (0.9, 1.0, 1.1), p: float = 0.5):
        super().__init__()
        if not factors or min(factors) <= 0:
            raise ConfigError(f"augment.speed.factors must be positive, got {factors}")
        self.factors = tuple(float(f) for f in factors)
        self.p = p

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """``[batch, time]`` -> ``[batch, time]``."""
        b, n = waves.shape
        choice = torch.randint(len(self.factors), (b,), device=waves.device)
        choice = torch.where(_apply_mask(b, self.p, waves.device), choice, torch.full_like(choice, -1))
        out = waves.clone()
        for k, factor in enumerate(self.factors):
            rows = (choice == k).nonzero(as_tuple=True)[0]
            if factor == 1.0 or rows.numel() == 0:
                continue
            orig, new = _ratio(factor)
            moved = torchaudio.functional.resample(waves[rows], orig, new)
            out[rows] = _crop_or_pad(moved, n, random_offset=True)
        return out


class PitchShift(nn.Module):
    """Shift the pitch of each example by a random number of semitones, keeping its
    duration: phase-vocoder time stretch by ``r = 2^(s/12)``, then resampling by ``1/r``
    (the method of ``torchaudio.functional.pitch_shift``, with ``r`` rounded to a
    small-integer ratio, within 0.05 semitone for |s| <= 2, so resampling stays cheap).

    Examples are grouped by their shift, one call per group, on the batch's device.

    Args:
        semitones: shifts to draw from uniformly, e.g. ``(-2, -1, 1, 2)``.
        n_fft: STFT size of the phase vocoder in samples (hop ``n_fft // 4``).
        p: probability that an example is shifted.
    """

    def __init__(self, semitones: tuple[float, ...] = (-2.0, -1.0, 1.0, 2.0), n_fft: int = 512, p: float = 0.3):
        super().__init__()
        if not semitones:
            raise ConfigError("augment.pitch.semitones is empty")
        self.semitones = tuple(float(s) for s in semitones)
        self.n_fft, self.hop = n_fft, n_fft // 4
        self.p = p
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        phase_advance = torch.linspace(0, torch.pi * self.hop, n_fft // 2 + 1)[..., None]
        self.register_buffer("phase_advance", phase_advance, persistent=False)

    def shift(self, waves: torch.Tensor, semitones: float) -> torch.Tensor:
        """Pitch-shift all of ``waves [batch, time]`` by ``semitones``; same shape."""
        n = waves.shape[-1]
        up, down = _ratio(2.0 ** (semitones / 12.0))
        window = self.window.to(waves.device)
        spec = torch.stft(waves, self.n_fft, self.hop, window=window, return_complex=True)
        stretched = torchaudio.functional.phase_vocoder(spec, down / up, self.phase_advance.to(waves.device))
        longer = torch.istft(stretched, self.n_fft, self.hop, window=window, length=int(round(n * up / down)))
        return _crop_or_pad(torchaudio.functional.resample(longer, up, down), n, random_offset=False)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """``[batch, time]`` -> ``[batch, time]``."""
        b = waves.shape[0]
        choice = torch.randint(len(self.semitones), (b,), device=waves.device)
        choice = torch.where(_apply_mask(b, self.p, waves.device), choice, torch.full_like(choice, -1))
        out = waves.clone()
        for k, steps in enumerate(self.semitones):
            rows = (choice == k).nonzero(as_tuple=True)[0]
            if steps == 0 or rows.numel() == 0:
                continue
            out[rows] = self.shift(waves[rows], steps)
        return out


class Mixup(nn.Module):
    """Mixup (Zhang et al., 2018, ICLR) on feature batches, per example.

    Example ``i`` is mixed with a random partner ``j`` (a permutation of the batch):
    ``x_i' = lam_i x_i + (1 - lam_i) x_j`` and the target becomes the same mixture of
    one-hot labels. ``lam_i ~ Beta(alpha, alpha)`` per example, folded to
    ``max(lam, 1 - lam)`` so each example keeps its own label as the larger part;
    examples not drawn (probability ``1 - p``) keep ``lam = 1``.

    Args:
        alpha: Beta distribution parameter.
        p: probability that an example is mixed.
    """

    def __init__(self, alpha: float = 0.4, p: float = 0.5):
        super().__init__()
        if alpha <= 0:
            raise ConfigError(f"augment.mixup.alpha must be > 0, got {alpha}")
        self.alpha, self.p = alpha, p

    def forward(self, feats: torch.Tensor, targets: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: feats ``[batch, ...]``, targets ``[batch]`` class indices.

        Returns: mixed feats (same shape) and soft targets ``[batch, n_classes]``.
        """
        b, device = feats.shape[0], feats.device
        lam = torch.distributions.Beta(self.alpha, self.alpha).sample((b,)).to(device)
        lam = torch.maximum(lam, 1 - lam)
        lam = torch.where(_apply_mask(b, self.p, device), lam, torch.ones_like(lam))
        perm = torch.randperm(b, device=device)
        shape = (b,) + (1,) * (feats.dim() - 1)
        mixed = lam.view(shape) * feats + (1 - lam.view(shape)) * feats[perm]
        onehot = nn.functional.one_hot(targets, n_classes).to(feats.dtype)
        soft = lam[:, None] * onehot + (1 - lam[:, None]) * onehot[perm]
        return mixed, soft


def _mask_along(feats: torch.Tensor, max_width: int, n_masks: int, dim: int, on: torch.Tensor) -> torch.Tensor:
    """Zero ``n_masks`` random bands of width ``[0, max_width]`` along ``dim`` per example."""
    b, size = feats.shape[0], feats.shape[dim]
    if max_width <= 0 or n_masks <= 0 or size == 0:
        return feats
    idx = torch.arange(size, device=feats.device)
    keep = torch.ones(b, size, dtype=torch.bool, device=feats.device)
    for _ in range(n_masks):
        width = (torch.rand(b, device=feats.device) * (min(max_width, size) + 1)).long()
        start = (torch.rand(b, device=feats.device) * (size - width + 1).float()).long()
        band = (idx[None, :] >= start[:, None]) & (idx[None, :] < (start + width)[:, None])
        keep &= ~(band & on[:, None])
    shape = [b, 1, 1]
    shape[dim] = size
    # Masked cells take the example's mean (0 after per-utterance normalisation).
    fill = feats.mean(dim=(1, 2), keepdim=True)
    return torch.where(keep.view(shape), feats, fill)


class SpecAugment(nn.Module):
    """SpecAugment frequency and time masking (Park et al., 2019, Interspeech).

    Masks are drawn independently per example; masked cells are set to the example's
    mean value.

    Args:
        freq_mask: maximum width of a frequency mask in bins (F in the paper).
        time_mask: maximum width of a time mask in frames (T in the paper).
        num_freq_masks, num_time_masks: masks of each kind per example.
        p: probability that an example is masked at all.
    """

    def __init__(self, freq_mask: int = 8, time_mask: int = 20, num_freq_masks: int = 2, num_time_masks: int = 2, p: float = 1.0):
        super().__init__()
        self.freq_mask, self.time_mask = freq_mask, time_mask
        self.num_freq_masks, self.num_time_masks = num_freq_masks, num_time_masks
        self.p = p

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """``[batch, n_features, frames]`` -> same shape."""
        on = _apply_mask(feats.shape[0], self.p, feats.device)
        feats = _mask_along(feats, self.freq_mask, self.num_freq_masks, 1, on)
        return _mask_along(feats, self.time_mask, self.num_time_masks, 2, on)


#: Name in ``conf/augment/*.yaml`` -> module class, per stage.
#: ``sample_rate`` is passed to the modules that take it (from ``data.sample_rate``).
WAVEFORM_AUGMENTS = {"noise": AdditiveNoise, "gain": RandomGain, "time_shift": TimeShift, "speed": SpeedPerturb, "pitch": PitchShift}
SPECTROGRAM_AUGMENTS = {"specaugment": SpecAugment}
#: Augmentations that also change the targets (soft labels).
TARGET_AUGMENTS = {"mixup": Mixup}


def build_chain(cfg: dict | None, registry: dict[str, type[nn.Module]], sample_rate: int | None = None) -> nn.Sequential:
    """Build the enabled augmentations of ``registry`` from an augment config.

    A config entry is ``{name: {p: ..., <module args>...}}``; an entry that is ``None``,
    has ``enabled: false`` or ``p: 0`` is left out. Order follows the config.

    Raises:
        ValueError: an entry names no known augmentation.
    """
    modules = []
    all_known = {**WAVEFORM_AUGMENTS, **SPECTROGRAM_AUGMENTS, **TARGET_AUGMENTS}
    for name, args in (cfg or {}).items():
        if name not in all_known:
            raise ConfigError(f"augment.{name} is unknown; allowed: {sorted(all_known)}")
        if name not in registry or not args:
            continue
        args = dict(args)
        if not args.pop("enabled", True) or args.get("p", 1.0) <= 0:
            continue
        if sample_rate is not None and "sample_rate" in inspect.signature(registry[name]).parameters:
            args.setdefault("sample_rate", sample_rate)
        modules.append(registry[name](**args))
    return nn.Sequential(*modules)
