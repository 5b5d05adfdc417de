"""Speaker-level feature normalisation (speaker CMVN).

Each speaker's features are shifted and scaled by that speaker's own mean and standard
deviation per feature row, taken over all frames of all their recordings. This removes
what a voice adds to every utterance (vocal-tract length, recording level, microphone)
while keeping what varies between one speaker's utterances: loudness, spectral tilt and
pitch range, which carry arousal. Per-utterance normalisation removes those too.

The statistics need no labels, only unlabelled speech of the speaker. For a test speaker
they come from that speaker's test recordings, so a model evaluated this way assumes
the speaker's identity is known and some of their speech is available before the
decision (the usual setting of speaker normalisation in SER: Busso, Mariooryad, Metallinou
and Narayanan, "Iterative feature normalization scheme for automatic emotion detection
from speech", IEEE Trans. Affective Computing 4(4), 2013; Schuller et al., "Cross-corpus
acoustic emotion recognition", IEEE Trans. Affective Computing 1(2), 2010).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

#: Floor of a standard deviation (features in dB or cepstra; a constant row is left unscaled).
STD_FLOOR = 1e-3


class FeatureStats:
    """Running per-row mean and standard deviation of ``[n_features, frames]`` features.

    Sums are kept in float64, so the order and chunking of the updates do not change the
    result beyond rounding.
    """

    def __init__(self, n_features: int):
        self.count = 0
        self.sum = torch.zeros(n_features, dtype=torch.float64)
        self.sum_sq = torch.zeros(n_features, dtype=torch.float64)

    def update(self, feats: torch.Tensor) -> None:
        """Add ``[n_features, frames]`` or ``[batch, n_features, frames]`` features.

        Raises:
            ValueError: a feature dimension other than ``n_features``.
        """
        feats = feats.detach().to("cpu", torch.float64)
        if feats.dim() == 3:
            feats = feats.transpose(0, 1).reshape(feats.shape[1], -1)
        if feats.dim() != 2 or feats.shape[0] != self.sum.shape[0]:
            raise ValueError(f"expected [{self.sum.shape[0]}, frames] features, got shape {tuple(feats.shape)}")
        self.count += feats.shape[1]
        self.sum += feats.sum(dim=1)
        self.sum_sq += feats.pow(2).sum(dim=1)

    @classmethod
    def pooled(cls, parts: list["FeatureStats"], n_features: int) -> "FeatureStats":
        """The statistics of all frames of ``parts`` together (sums added)."""
        out = cls(n_features)
        for part in parts:
            out.count += part.count
            out.sum += part.sum
            out.sum_sq += part.sum_sq
        return out

    @property
    def mean(self) -> torch.Tensor:
        """``[n_features]`` float32 mean.

        Raises:
            ValueError: no frames were added.
        """
        if self.count == 0:
            raise ValueError("no frames: feature statistics need at least one frame")
        return (self.sum / self.count).float()

    @property
    def std(self) -> torch.Tensor:
        """``[n_features]`` float32 population standard deviation, floored at :data:`STD_FLOOR`."""
        mean = self.sum / max(self.count, 1)
        var = (self.sum_sq / max(self.count, 1) - mean.pow(2)).clamp_min(0.0)
        return var.sqrt().clamp_min(STD_FLOOR).float()


@torch.no_grad()
def recording_stats(extract: nn.Module, waves: Iterable[np.ndarray], n_features: int,
                    device: str | torch.device = "cpu", chunk_samples: int = 16000 * 30) -> FeatureStats:
    """Statistics of the features of some recordings (one speaker's, or one long file's).

    Args:
        extract: the front-end, ``[1, time]`` -> ``[1, n_features, frames]``, built with
            ``normalize="none"`` or ``"speaker"`` (un-normalised output).
        waves: ``[time]`` float32 waveforms at the front-end's sample rate.
        n_features: feature rows.
        device: where to run the front-end.
        chunk_samples: recordings longer than this are featurised in pieces of this
            many samples (memory stays bounded for hour-long files; the frames at the
            piece boundaries differ slightly from one pass over the whole file).

    Returns:
        The accumulated :class:`FeatureStats`.
    """
    stats = FeatureStats(n_features)
    for wave in waves:
        wave = np.asarray(wave, dtype=np.float32)
        wave = torch.from_numpy(wave if wave.flags.writeable else wave.copy())  # the cache is a read-only memory map
        for start in range(0, max(len(wave), 1), chunk_samples):
            piece = wave[start:start + chunk_samples]
            if len(piece) == 0:
                continue
            stats.update(extract(piece[None].to(device))[0])
    return stats


class SpeakerNormalizer(nn.Module):
    """Applies per-speaker mean and standard deviation: ``(x - mean[s]) / std[s]``.

    Args:
        mean: ``[n_speakers, n_features]``.
        std: ``[n_speakers, n_features]`` (positive).

    Shapes: ``feats [batch, n_features, frames]`` and ``speakers [batch]`` (int64 rows of
    ``mean``) -> ``[batch, n_features, frames]``.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        if mean.shape != std.shape or mean.dim() != 2:
            raise ValueError(f"mean and std must both be [n_speakers, n_features], got {tuple(mean.shape)} and {tuple(std.shape)}")
        self.register_buffer("mean", mean.float(), persistent=False)
        self.register_buffer("std", std.float(), persistent=False)

    @classmethod
    def from_stats(cls, stats: list[FeatureStats]) -> "SpeakerNormalizer":
        """One row per :class:`FeatureStats`, in order."""
        return cls(torch.stack([s.mean for s in stats]), torch.stack([s.std for s in stats]))

    def forward(self, feats: torch.Tensor, speakers: torch.Tensor) -> torch.Tensor:
        """Raises: IndexError for a speaker index outside ``[0, n_speakers)``."""
        if speakers.numel() and (int(speakers.min()) < 0 or int(speakers.max()) >= self.mean.shape[0]):
            raise IndexError(f"speaker index out of range [0, {self.mean.shape[0]}): {speakers.tolist()}")
        speakers = speakers.to(self.mean.device)
        return (feats - self.mean[speakers][..., None]) / self.std[speakers][..., None]
