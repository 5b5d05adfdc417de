"""Expected window counts of :class:`ser_lightning.data.streaming.WindowSlicer` (test oracle)."""

from __future__ import annotations

import math


def count_windows(n_samples: int, window: int, hop: int) -> int:
    """Windows :class:`WindowSlicer` yields for a stream of ``n_samples``."""
    if n_samples <= 0:
        return 0
    if n_samples <= window:
        return 1
    return 1 + math.ceil((n_samples - window) / hop)
