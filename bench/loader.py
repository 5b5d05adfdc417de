"""The CPU side of the data pipeline: milliseconds per training batch from the DataLoader.

Compares, on the same cached waveforms and the same sampler:

- batched fetch: :meth:`ClipDataset.__getitems__` (one output array per batch, one random
  draw per batch) with :func:`collate_clips` — what the DataModule uses;
- per-item fetch: one ``__getitem__`` call per clip, then ``default_collate``
  (``torch.stack`` of the clips): the usual map-style dataset, and this project's
  loader before the change.

Usage: python -m bench.loader [--repeats 5] [overrides ...]   (default: TESS, batch 32)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from bench.common import header, load_avg, median
from bench.train_throughput import compose_cfg

from ser_lightning.training.pipeline import build_datamodule


class PerItem(Dataset):
    """The dataset without ``__getitems__``: the DataLoader fetches clip by clip."""

    def __init__(self, inner):
        self.inner = inner

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        return self.inner[i]


def ms_per_batch(loader: DataLoader) -> tuple[float, float]:
    """(wall, CPU) milliseconds per batch over one pass."""
    wall, cpu, n = time.perf_counter(), time.process_time(), 0
    for _ in loader:
        n += 1
    return 1000 * (time.perf_counter() - wall) / n, 1000 * (time.process_time() - cpu) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    dm = build_datamodule(compose_cfg(["logger=none", "callbacks=none", *args.overrides], Path(tempfile.mkdtemp())))
    dm.setup("fit")
    batched = dm.train_dataloader()
    per_item = DataLoader(PerItem(batched.dataset), batch_size=dm.batch_size, shuffle=True, drop_last=True, collate_fn=default_collate)
    results = {"batched": [], "per_item": []}
    loads = []
    for _ in range(args.repeats):
        loads.append(load_avg())
        torch.manual_seed(0)
        results["batched"].append(ms_per_batch(batched))
        torch.manual_seed(0)
        results["per_item"].append(ms_per_batch(per_item))
    lines = [header(f"DataLoader, training batches of {dm.batch_size} clips x {dm.clip_samples} samples (num_workers=0)")]
    lines.append("| fetch | wall ms / batch | CPU ms / batch | speed-up (wall, per-run ratio) |")
    lines.append("|---|---|---|---|")
    for name, label in (("per_item", "per item + default_collate (before)"), ("batched", "batched __getitems__ (now)")):
        wall = [w for w, _ in results[name]]
        cpu = [c for _, c in results[name]]
        ratio = median([p[0] / b[0] for p, b in zip(results["per_item"], results[name], strict=True)])
        lines.append(f"| {label} | {median(wall):.2f} (runs: {', '.join(f'{v:.1f}' for v in wall)}) | {median(cpu):.2f} | {ratio:.1f}x |")
    lines.append(f"\nLoad average (1 min) at each repeat: {', '.join(loads)}; at the end {load_avg()}.")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
