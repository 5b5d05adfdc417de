"""A map-style dataset over cached waveforms: fixed-length clips and class indices."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ser_lightning.data.audio import fit_length
from ser_lightning.data.cache import DecodedAudio


class ClipDataset(Dataset):
    """Fixed-length clips of cached waveforms.

    In training each item is a random crop (or, for a short file, a random placement
    inside the zero-padded clip); in evaluation it is the centred crop/pad, so
    validation and test batches are deterministic.

    Args:
        audio: decoded waveforms (all files of the corpus).
        indices: which files of ``audio`` belong to this dataset.
        targets: ``[len(indices)]`` class index of each.
        clip_samples: clip length in samples.
        train: random crops when ``True``.

    Items: ``(wave [clip_samples] float32, target int64)``.
    """

    def __init__(self, audio: DecodedAudio, indices: list[int], targets: list[int], clip_samples: int, train: bool):
        if len(indices) != len(targets):
            raise ValueError("indices and targets differ in length")
        self.audio = audio
        self.indices = np.asarray(indices, dtype=np.int64)
        self.targets = torch.as_tensor(targets, dtype=torch.long)
        self.clip_samples = clip_samples
        self.train = train

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        wave = self.audio.wave(int(self.indices[i]))
        offset = None
        if self.train:
            room = abs(wave.shape[0] - self.clip_samples)
            offset = int(torch.randint(0, room + 1, ()).item())  # torch RNG: seeded per worker
        clip = fit_length(wave, self.clip_samples, offset)
        return torch.from_numpy(np.array(clip, dtype=np.float32)), self.targets[i]
