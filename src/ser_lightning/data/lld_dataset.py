"""A map-style dataset over cached openSMILE descriptors: fixed-length descriptor windows
and class indices (``features=egemaps|compare`` with a neural model).

The counterpart of :class:`~ser_lightning.data.dataset.ClipDataset` for descriptor
input: each file's ``[n_descriptors, frames]`` matrix (computed once per file and cached,
:mod:`ser_lightning.data.feature_cache`) is cut into windows of ``clip_frames`` frames
(100 frames per second) with :func:`~ser_lightning.transforms.lld_windows.lld_window`, the
function the scoring path uses too.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ser_lightning.transforms.lld_windows import centred_start, lld_window


class LLDClipDataset(Dataset):
    """Fixed-length windows of per-file descriptor matrices.

    In training each item is a random window (any start frame; a file shorter than the
    window is placed at a random offset in zeros); in evaluation it is the centred
    window (:func:`~ser_lightning.transforms.lld_windows.centred_start`), so validation
    batches are deterministic.

    Args:
        llds: ``[n_descriptors, frames]`` float32 matrices, indexed like the corpus's
            decoded audio (``None`` for files without descriptors: never indexed).
        indices: which entries of ``llds`` belong to this dataset.
        targets: ``[len(indices)]`` class index of each.
        clip_frames: window length in frames (``clip_samples // hop``).
        train: random windows when ``True``.
        speakers: ``[len(indices)]`` speaker index of each, or ``None`` (then items have
            no third element).

    Items and batches (:meth:`__getitems__`, use
    :func:`~ser_lightning.data.dataset.collate_clips`): ``(windows [n, n_descriptors,
    clip_frames] float32, targets [n] int64[, speakers [n] int64])``.

    Raises:
        ValueError: lengths that differ, or an index without descriptors.
    """

    def __init__(self, llds: list[np.ndarray | None], indices: list[int], targets: list[int], clip_frames: int, train: bool,
                 speakers: list[int] | None = None):
        if len(indices) != len(targets) or (speakers is not None and len(speakers) != len(indices)):
            raise ValueError("indices, targets and speakers differ in length")
        missing = [i for i in indices if llds[i] is None]
        if missing:
            raise ValueError(f"{len(missing)} files of this part have no descriptors (indices {missing[:5]})")
        self.llds = llds
        self.indices = np.asarray(indices, dtype=np.int64)
        self.targets = torch.as_tensor(targets, dtype=torch.long)
        self.speakers = None if speakers is None else torch.as_tensor(speakers, dtype=torch.long)
        self.clip_frames = clip_frames
        self.train = train
        self.n_features = llds[indices[0]].shape[0] if len(indices) else 0

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        return tuple(x[0] for x in self.__getitems__([i]))

    def __getitems__(self, items: list[int]) -> tuple[torch.Tensor, ...]:
        """A batch (see the class docstring); random start frames drawn from the torch RNG."""
        files = self.indices[items]
        lengths = np.array([self.llds[f].shape[1] for f in files.tolist()], dtype=np.int64)
        clip = self.clip_frames
        if self.train:
            draw = torch.rand(len(items), dtype=torch.float64).numpy()
            room = np.abs(lengths - clip)
            offsets = np.minimum((draw * (room + 1)).astype(np.int64), room)
            starts = np.where(lengths >= clip, offsets, -offsets)
        else:
            starts = np.array([centred_start(int(n), clip) for n in lengths], dtype=np.int64)
        out = np.zeros((len(items), self.n_features, clip), dtype=np.float32)
        for row, (f, s) in enumerate(zip(files.tolist(), starts.tolist(), strict=True)):
            lld_window(self.llds[f], s, clip, out[row])
        rows = torch.as_tensor(items, dtype=torch.long)
        if self.speakers is None:
            return torch.from_numpy(out), self.targets[rows]
        return torch.from_numpy(out), self.targets[rows], self.speakers[rows]
