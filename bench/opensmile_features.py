"""Benchmark: openSMILE eGeMAPS / ComParE extraction against the log-mel front-end, and the
cost of a feature-cache hit.

The same ``--files`` RAVDESS speech files (decoded once to 16 kHz mono, whole files) go
through:

- openSMILE (``opensmile`` package, one thread, file by file, as the feature cache
  computes them): eGeMAPS v02 and ComParE 2016, functionals (one vector per file) and
  low-level descriptors (per 10 ms frame);
- the project's log-mel front-end (:class:`ser_lightning.transforms.features.FeatureExtractor`,
  64 bands, one file at a time on the CPU, the work ``predict.py`` does per file);
- the per-file feature cache (:mod:`ser_lightning.data.feature_cache`) once filled:
  the cost of reading every file's functionals (and eGeMAPS descriptors) back.

Figures are CPU seconds per hour of audio (median over ``--repeats``) and the real-time
factor (processing time / audio duration).

Usage: python -m bench.opensmile_features [--files 40] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch

from bench.common import fmt_runs, header, load_avg, median

from ser_lightning.data.cache import decode_files
from ser_lightning.data.corpora import read_corpus
from ser_lightning.data.feature_cache import load_or_extract
from ser_lightning.transforms.features import FeatureConfig, FeatureExtractor
from ser_lightning.transforms.opensmile_features import extract, opensmile_version

SR = 16000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = os.path.join(os.environ.get("SER_DATA_DIR", "data"), "ravdess")
    rows = read_corpus("ravdess", root)
    rows = [rows[i] for i in np.random.default_rng(0).choice(len(rows), size=min(args.files, len(rows)), replace=False)]
    audio = decode_files([r.path for r in rows], SR, workers=1)
    waves = [np.asarray(audio.wave(i)) for i in range(len(rows))]
    hours = sum(len(w) for w in waves) / SR / 3600
    lines = []

    def per_hour(seconds: list[float]) -> str:
        per = [s / hours for s in seconds]
        return f"{fmt_runs(per, 's', 1)} | {median(seconds) / (hours * 3600):.4f}"

    for name in ("egemaps", "compare"):
        for level in ("functionals", "lld"):
            extract(waves[0], SR, name, level)  # builds the extractor (and prints the licence) outside the timing
            times = []
            for _ in range(args.repeats):
                start = time.process_time()
                for w in waves:
                    extract(w, SR, name, level)
                times.append(time.process_time() - start)
            lines.append(f"| openSMILE {name} {level} | {per_hour(times)} | {load_avg()} |")

    front = FeatureExtractor(FeatureConfig.from_dict({"kind": "logmel", "sample_rate": SR})).eval()
    with torch.inference_mode():
        front(torch.from_numpy(waves[0])[None])
        times = []
        for _ in range(args.repeats):
            start = time.process_time()
            for w in waves:
                front(torch.from_numpy(w)[None])
            times.append(time.process_time() - start)
    lines.append(f"| log-mel 64 bands (FeatureExtractor, torch CPU) | {per_hour(times)} | {load_avg()} |")

    with tempfile.TemporaryDirectory() as tmp:
        paths = [r.path for r in rows]
        load_or_extract(paths, audio, "egemaps", cache_dir=tmp, workers=1)  # fill
        times = []
        for _ in range(args.repeats):
            start = time.process_time()
            hit = load_or_extract(paths, audio, "egemaps", cache_dir=tmp, workers=1)
            times.append(time.process_time() - start)
        assert hit.hits == len(paths) and hit.computed == 0
        lines.append(f"| feature-cache hit, eGeMAPS functionals ({1000 * median(times) / len(paths):.2f} ms per file) | "
                     f"{per_hour(times)} | {load_avg()} |")
        # the descriptors a neural model with features=egemaps reads at setup (one [25, frames] .npy per file)
        load_or_extract(paths, audio, "egemaps", "lld", cache_dir=tmp, workers=1)  # fill
        times = []
        for _ in range(args.repeats):
            start = time.process_time()
            hit = load_or_extract(paths, audio, "egemaps", "lld", cache_dir=tmp, workers=1)
            times.append(time.process_time() - start)
        assert hit.hits == len(paths) and hit.computed == 0
        lines.append(f"| feature-cache hit, eGeMAPS descriptors ({1000 * median(times) / len(paths):.2f} ms per file) | "
                     f"{per_hour(times)} | {load_avg()} |")

    print(header("openSMILE features vs the log-mel front-end (CPU)"))
    print(f"{len(rows)} RAVDESS files, {hours * 3600:.1f} s of audio (whole files, 16 kHz mono); opensmile {opensmile_version()}; "
          f"CPU time (process_time) of one thread; median over {args.repeats} repeats.\n")
    print("| work | CPU seconds per hour of audio | real-time factor | load avg after |")
    print("|---|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
