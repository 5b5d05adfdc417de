"""Device-side augmentation as ``nn.Module``s, applied to training batches only.

Every module draws its random values per example (never one draw for the whole batch)
and works on the batch where it is (CPU or GPU). The DataModule applies the waveform
chain before the feature front-end and the spectrogram chain after it, only while the
trainer is training: validation, test and prediction data are never augmented.
"""

from __future__ import annotations

import torch
from torch import nn


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
WAVEFORM_AUGMENTS = {"noise": AdditiveNoise, "gain": RandomGain}
SPECTROGRAM_AUGMENTS = {"specaugment": SpecAugment}


def build_chain(cfg: dict | None, registry: dict[str, type[nn.Module]]) -> nn.Sequential:
    """Build the enabled augmentations of ``registry`` from an augment config.

    A config entry is ``{name: {p: ..., <module args>...}}``; an entry that is ``None``,
    has ``enabled: false`` or ``p: 0`` is left out. Order follows the config.

    Raises:
        ValueError: an entry names no known augmentation.
    """
    modules = []
    all_known = {**WAVEFORM_AUGMENTS, **SPECTROGRAM_AUGMENTS}
    for name, args in (cfg or {}).items():
        if name not in all_known:
            raise ValueError(f"augment.{name} is unknown; allowed: {sorted(all_known)}")
        if name not in registry or not args:
            continue
        args = dict(args)
        if not args.pop("enabled", True) or args.get("p", 1.0) <= 0:
            continue
        modules.append(registry[name](**args))
    return nn.Sequential(*modules)
