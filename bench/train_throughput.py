"""Benchmark 3, training throughput: clips per second in steady-state epochs, per model,
and the share of the training time spent waiting for data.

Builds the DataModule and the model from the project's Hydra config (``conf/train.yaml``
with the overrides given; the waveform cache goes to ``$TMPDIR/ser_bench_cache``, shared by
the benchmark scripts), trains ``--epochs`` epochs without validation, and reports:

- clips/s of each epoch after the first (training clips / epoch seconds; the first epoch
  also pays for warm-up and, on a cold cache, for decoding);
- the data-wait share (:class:`ser_lightning.training.callbacks.DataWaitTimer`): time between
  training steps (DataLoader, host->device copy, device-side augmentation + features) over
  the epoch's training time; and the part of it that is the device-side transform.

Usage:
  python -m bench.train_throughput [--models cnn1d cnn2d] [--epochs 4] [--workers 0]
      [--channels-last] [--compile] [--device cpu|cuda] [overrides ...]
  e.g. python -m bench.train_throughput --models cnn2d data=ravdess features=mfcc
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from bench.common import REPO, header, load_avg, median

from ser_lightning.training.callbacks import DataWaitTimer, EpochTimer
from ser_lightning.training.pipeline import build_datamodule, build_model


def compose_cfg(overrides: list[str], out: Path):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        cfg.paths.data_dir = os.environ.get("SER_DATA_DIR", str(REPO.parent / "shared" / "data"))
        cfg.paths.cache_dir = str(Path(tempfile.gettempdir()) / "ser_bench_cache")
    return cfg


class TransformTimer:
    """Wraps ``dm.transform_batch`` and sums its seconds for training batches."""

    def __init__(self, dm, device: torch.device):
        self.seconds = 0.0
        self.inner, self.device = dm.transform_batch, device
        dm.transform_batch = self

    def __call__(self, waves, training, speakers=None):
        start = time.perf_counter()
        out = self.inner(waves, training, speakers)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        if training:
            self.seconds += time.perf_counter() - start
        return out


def run(model_name: str, args, overrides: list[str]) -> dict:
    """Train ``args.epochs`` epochs of ``model_name``; per-epoch figures."""
    L.seed_everything(0, workers=True)
    out = Path(tempfile.mkdtemp(prefix="ser_bench_train_"))
    cfg = compose_cfg([f"model={model_name}", "logger=none", "callbacks=none", *overrides], out)
    with open_dict(cfg):
        cfg.data.num_workers = args.workers
        cfg.data.subset_fraction = args.subset
    dm = build_datamodule(cfg)
    dm.setup("fit")
    model = build_model(cfg, dm)
    if args.channels_last:
        model.net = model.net.to(memory_format=torch.channels_last)
    if args.compile:
        model.net = torch.compile(model.net)
    device = torch.device(args.device)
    transform = TransformTimer(dm, device)
    epoch_timer, wait_timer = EpochTimer(), DataWaitTimer()
    trainer = L.Trainer(
        accelerator=device.type, devices=1, max_epochs=args.epochs, limit_val_batches=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[epoch_timer, wait_timer, _EpochMarks(transform)], default_root_dir=str(out),
    )
    trainer.fit(model, datamodule=dm)
    shutil.rmtree(out, ignore_errors=True)  # split manifests only; the waveform cache stays for the next run
    n_clips = len(dm.train_dataloader()) * dm.batch_size  # drop_last: full batches only
    marks = trainer.callbacks[-1]
    return {
        "clips": n_clips,
        "workers": dm.loader_settings()[0],
        "epoch_s": epoch_timer.seconds,
        "clips_s": [n_clips / s for s in epoch_timer.seconds],
        "wait": wait_timer.fractions,
        "transform": [t / (w + s) for t, w, s in zip(marks.per_epoch, wait_timer.wait_seconds, wait_timer.step_seconds, strict=True)],
        "loads": marks.loads,
    }


class _EpochMarks(L.Callback):
    """Per epoch: the device-side transform's seconds and the load average."""

    def __init__(self, transform: TransformTimer):
        self.transform, self.per_epoch, self.loads, self._t0 = transform, [], [], 0.0

    def on_train_epoch_start(self, trainer, pl_module):
        self._t0 = self.transform.seconds
        self.loads.append(load_avg())

    def on_train_epoch_end(self, trainer, pl_module):
        self.per_epoch.append(self.transform.seconds - self._t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["cnn1d", "cnn2d"])
    parser.add_argument("--epochs", type=int, default=4, help="the first is warm-up; the others give the medians")
    parser.add_argument("--workers", default="auto", help="data.num_workers (auto or an integer)")
    parser.add_argument("--subset", type=float, default=1.0, help="data.subset_fraction")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the backbone")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data=ravdess features=mfcc")
    args = parser.parse_args()
    args.workers = args.workers if args.workers == "auto" else int(args.workers)
    if args.threads:
        torch.set_num_threads(args.threads)
    tags = [t for t, on in (("channels-last", args.channels_last), ("torch.compile", args.compile)) if on]
    lines = [header(f"Training throughput ({args.device}{', ' + ', '.join(tags) if tags else ''})")]
    lines.append("| model | train clips / epoch | DataLoader workers | first epoch | steady-state clips/s (epochs 2+) "
                 "| data-wait share (epochs 2+) | of which device-side augmentation + features | load avg per epoch |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for name in args.models:
        r = run(name, args, args.overrides)
        steady = slice(1, None)
        lines.append(
            f"| {name} | {r['clips']} | {r['workers']} | {r['epoch_s'][0]:.1f} s | {median(r['clips_s'][steady]):.1f} "
            f"(epochs: {', '.join(f'{v:.1f}' for v in r['clips_s'][steady])}) | {100 * median(r['wait'][steady]):.1f} % "
            f"(epochs: {', '.join(f'{100 * v:.1f}' for v in r['wait'][steady])}) | {100 * median(r['transform'][steady]):.1f} % "
            f"| {', '.join(r['loads'])} |"
        )
    lines.append(f"\nLoad average (1 min) at the end: {load_avg()}. Figures after the first epoch are medians over epochs 2..{args.epochs}.")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
