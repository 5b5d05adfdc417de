"""The embedding cache of a frozen encoder: what the head reads, per window, on disk.

A frozen encoder's output is a function of the waveform alone, so each window's
representation (every layer's hidden states pooled over the window, ``[layers, 2 * dim]``,
or kept per frame, ``[layers, frames, dim]``) is computed once and stored in float16 under
``<folder>/<encoder name>-<weights SHA-256, 16 hex>-<form>-<architecture hash>/``, one
``.npy`` file per window named by the SHA-1 of its float32 samples. The key therefore
changes with the encoder, its weight file and the samples themselves: a changed file, crop,
augmentation or resampling is a miss, never a stale hit. Training, evaluation and
prediction share it (the training crops are the scoring windows when the cache is on:
``data.train_crop=windows``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch


class EmbeddingCache:
    """Float16 arrays on disk, keyed by the content of the window they came from.

    Args:
        folder: the cache root (created on first write).
        encoder: registry name of the encoder.
        sha256: SHA-256 of its weight file.
        form: ``"stats"`` (pooled per window) or ``"frames"`` (per frame).
        architecture: the encoder's architecture settings (their hash is part of the key).
        memory_bytes: entries read or written are also kept in memory up to this many bytes
            (then only on disk), so an epoch after the first reads no file.

    Attributes:
        hits, misses: lookups answered from disk and not, since construction.
    """

    def __init__(self, folder: str | Path, encoder: str, sha256: str, form: str, architecture: dict,
                 memory_bytes: int = 512 * 2**20):
        arch = hashlib.sha1(json.dumps(architecture, sort_keys=True, default=str).encode()).hexdigest()[:8]
        safe = encoder.replace("/", "--").replace(":", "_")  # hf:<id or directory> as one folder name
        self.folder = Path(folder) / f"{safe}-{sha256[:16]}-{form}-{arch}"
        self.hits = self.misses = 0
        self.memory_bytes = memory_bytes
        self._memory: dict[str, torch.Tensor] = {}
        self._held = 0

    def _remember(self, key: str, value: torch.Tensor) -> None:
        size = value.numel() * value.element_size()
        if key not in self._memory and self._held + size <= self.memory_bytes:
            self._memory[key] = value
            self._held += size

    def __getstate__(self) -> dict:  # copies (deepcopy, DataLoader workers) start with an empty memory
        return {**self.__dict__, "_memory": {}, "_held": 0}

    @staticmethod
    def key(window: np.ndarray) -> str:
        """SHA-1 (hex) of a ``[time]`` float32 window's bytes."""
        return hashlib.sha1(np.ascontiguousarray(window, np.float32).tobytes()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npy"

    def get(self, key: str) -> torch.Tensor | None:
        """The stored float16 tensor of ``key``, or ``None`` (also for an unreadable file)."""
        if key in self._memory:
            self.hits += 1
            return self._memory[key]
        path = self._path(key)
        try:
            value = torch.from_numpy(np.load(path))
        except (OSError, ValueError, EOFError):
            self.misses += 1
            return None
        self.hits += 1
        self._remember(key, value)
        return value

    def put(self, key: str, value: torch.Tensor) -> None:
        """Store ``value`` (any shape) as float16, atomically (a temporary file renamed)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        half = value.detach().to("cpu", torch.float16)
        with tmp.open("wb") as fh:
            np.save(fh, half.numpy())
        os.replace(tmp, path)
        self._remember(key, half)

    def size_bytes(self) -> int:
        """Bytes stored under this encoder's folder."""
        return sum(p.stat().st_size for p in self.folder.rglob("*.npy")) if self.folder.is_dir() else 0
