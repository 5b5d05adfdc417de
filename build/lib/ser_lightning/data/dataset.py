"""A map-style dataset over cached waveforms: fixed-length clips and class indices."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ser_lightning.data.cache import DecodedAudio


class ClipDataset(Dataset):
    """Fixed-length clips of cached waveforms.

    In training each item is a random crop (or, for a short file, a random placement
    inside the zero-padded clip); in evaluation it is the centred crop/pad, so
    validation and test batches are deterministic.

    The DataLoader fetches whole batches through :meth:`__getitems__` (one random draw
    and one output array per batch, no per-item tensors to stack); use
    :func:`collate_clips` as its ``collate_fn``.

    Args:
        audio: decoded waveforms (all files of the corpus).
        indices: which files of ``audio`` belong to this dataset.
        targets: ``[len(indices)]`` class index of each.
        clip_samples: clip length in samples.
        train: random crops when ``True``.
        speakers: ``[len(indices)]`` speaker index of each, or ``None``. When given,
            every item and batch carries it as a third element (speaker normalisation).
        crop: training crops: ``"random"`` (any start) or ``"windows"``: one of the
            windows the scoring path cuts from the file (starts ``0, hop, 2 hop, ...``
            and one ending at the file's end: :class:`~ser_lightning.data.streaming.WindowSlicer`;
            a short file centred and zero-padded), drawn at random. With a frozen
            encoder's embedding cache (``model=ssl``), every training crop is then a
            window the cache has seen after the first epoch.
        hop_samples: the windows' hop for ``crop="windows"`` (default: half a clip, as
            predict.py's default).

    Items: ``(wave [clip_samples] float32, target int64)``, plus ``speaker int64`` when
    ``speakers`` is given.
    """

    def __init__(self, audio: DecodedAudio, indices: list[int], targets: list[int], clip_samples: int, train: bool,
                 speakers: list[int] | None = None, crop: str = "random", hop_samples: int | None = None):
        if len(indices) != len(targets) or (speakers is not None and len(speakers) != len(indices)):
            raise ValueError("indices, targets and speakers differ in length")
        self.audio = audio
        self.indices = np.asarray(indices, dtype=np.int64)
        self.targets = torch.as_tensor(targets, dtype=torch.long)
        self.speakers = None if speakers is None else torch.as_tensor(speakers, dtype=torch.long)
        self.clip_samples = clip_samples
        self.train = train
        if crop not in ("random", "windows"):
            raise ValueError(f"crop='{crop}' is unknown; allowed: random, windows")
        self.crop = crop
        self.hop_samples = int(hop_samples or int(round(clip_samples / 2)))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        return tuple(x[0] for x in self.__getitems__([i]))

    def __getitems__(self, items: list[int]) -> tuple[torch.Tensor, ...]:
        """A batch: waves ``[len(items), clip_samples]`` float32, targets ``[len(items)]``
        int64 (and speakers ``[len(items)]`` int64 when the dataset has them).

        Offsets (the crop start in a longer file, the zeros before a shorter one) are
        drawn for the whole batch at once from the torch RNG (seeded per worker);
        evaluation clips are centred.
        """
        files = self.indices[items]
        starts = self.audio.offsets[files]
        lengths = self.audio.offsets[files + 1] - starts
        room = np.abs(lengths - self.clip_samples)
        if self.train and self.crop == "windows":
            draw = torch.rand(len(items), dtype=torch.float64).numpy()
            regular = np.where(lengths >= self.clip_samples, (lengths - self.clip_samples) // self.hop_samples + 1, 1)
            extra = (lengths > self.clip_samples) & ((regular - 1) * self.hop_samples + self.clip_samples < lengths)
            k = np.minimum((draw * (regular + extra)).astype(np.int64), regular + extra - 1)
            offsets = np.where(lengths < self.clip_samples, room // 2, np.where(k < regular, k * self.hop_samples, room))
        elif self.train:
            draw = torch.rand(len(items), dtype=torch.float64).numpy()
            offsets = np.minimum((draw * (room + 1)).astype(np.int64), room)
        else:
            offsets = room // 2
        clip = self.clip_samples
        waves = np.zeros((len(items), clip), dtype=np.float32)
        samples = self.audio.samples
        # One contiguous copy per clip (a gather through a [batch, clip] index would
        # move several times more memory).
        for row, (start, n, off) in enumerate(zip(starts.tolist(), lengths.tolist(), offsets.tolist(), strict=True)):
            if n >= clip:
                waves[row] = samples[start + off:start + off + clip]
            else:
                waves[row, off:off + n] = samples[start:start + n]
        rows = torch.as_tensor(items, dtype=torch.long)
        if self.speakers is None:
            return torch.from_numpy(waves), self.targets[rows]
        return torch.from_numpy(waves), self.targets[rows], self.speakers[rows]


def window_starts(length: int, clip: int, hop: int) -> np.ndarray:
    """Starts of the windows :class:`~ser_lightning.data.streaming.WindowSlicer` cuts from
    ``length`` samples (``0, hop, 2 hop, ...`` and one ending at the end); for a file
    shorter than ``clip``, ``[-(room // 2)]``: the zeros put before it when centred."""
    if length < clip:
        return np.array([-((clip - length) // 2)])
    starts = list(range(0, length - clip + 1, hop))
    if starts[-1] + clip < length:
        starts.append(length - clip)
    return np.asarray(starts)


def all_windows(dataset: ClipDataset, batch_size: int = 32):
    """Every scoring window of every file of ``dataset`` (what ``crop="windows"`` draws
    from), as ``[<= batch_size, clip_samples]`` float32 tensors."""
    rows: list[np.ndarray] = []
    clip, samples = dataset.clip_samples, dataset.audio.samples
    for f in dataset.indices.tolist():
        start, end = int(dataset.audio.offsets[f]), int(dataset.audio.offsets[f + 1])
        n = end - start
        for s in window_starts(n, clip, dataset.hop_samples).tolist():
            w = np.zeros(clip, np.float32)
            if s < 0:
                w[-s:-s + n] = samples[start:end]
            else:
                w[:] = samples[start + s:start + s + clip]
            rows.append(w)
            if len(rows) == batch_size:
                yield torch.from_numpy(np.stack(rows))
                rows = []
    if rows:
        yield torch.from_numpy(np.stack(rows))


def collate_clips(batch):
    """``collate_fn`` for :class:`ClipDataset`: a batch from ``__getitems__`` is already
    collated; a list of single items (a plain sampler) is stacked."""
    if isinstance(batch, tuple):
        return batch
    return torch.utils.data.default_collate(batch)
