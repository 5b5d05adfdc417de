"""Benchmark 1, dataset preparation: decode + downmix + resample to 16 kHz.

Rebuilds WAV trees at the corpora's native rates in a temporary folder (TESS at
24,414 Hz, RAVDESS at 48 kHz, 16-bit PCM, channels as in the copy: 5 RAVDESS files are
stereo) from the shared 16 kHz FLAC copies, then times on the same files in the same run:

- ``librosa.load(path, sr=16000)`` once per file (the usual SER preparation);
- ``ser_lightning.data.cache.decode_files`` with 1 thread and with all threads;
- the waveform cache: ``load_or_decode`` on a filled cache (every later epoch and run),
  reading every sample once so that nothing is left lazy.

Usage: python -m bench.prep [--tess 400] [--ravdess 240] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from bench.common import REPO, fmt_runs, header, load_avg, median, timed  # noqa: F401

from ser_lightning.data.cache import decode_files, load_or_decode
from ser_lightning.data.corpora import read_corpus


def evenly(items: list, n: int) -> list:
    """``n`` items spread evenly over the sorted list (all classes and speakers)."""
    if n <= 0 or n >= len(items):
        return list(items)
    return [items[int(i * len(items) / n)] for i in range(n)]


def native_tree(rows, rate: int, src_root: Path, dst_root: Path) -> list[str]:
    """Write each row's audio as 16-bit WAV at ``rate`` below ``dst_root``; return the paths."""
    out = []
    for r in rows:
        audio, sr = sf.read(r.path, dtype="float32", always_2d=True)
        up = soxr.resample(audio, sr, rate, quality="HQ")
        dst = dst_root / Path(r.path).relative_to(src_root).with_suffix(".wav")
        dst.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(dst), np.clip(up, -1, 1), rate, subtype="PCM_16")
        out.append(str(dst))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("SER_DATA_DIR", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--tess", type=int, default=400, help="TESS files (0: all 2,520)")
    parser.add_argument("--ravdess", type=int, default=240, help="RAVDESS files (0: all 1,200)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import librosa  # the bench extra; imported here so --help works without it

    data_dir = Path(args.data_dir)
    tmp = Path(tempfile.mkdtemp(prefix="ser_bench_prep_"))
    workers = len(os.sched_getaffinity(0))
    load_notes = []
    lines = [header("Dataset preparation: decode + downmix + resample to 16 kHz")]
    lines.append(
        f"| corpus (native rate) | files | audio | librosa.load per file | decode_files, 1 thread | "
        f"decode_files, {workers} threads | cache hit (memory map) | speed-up vs librosa: 1 thread / {workers} threads / cache | max abs diff vs librosa |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|")
    try:
        for corpus, rate, n in (("tess", 24414, args.tess), ("ravdess", 48000, args.ravdess)):
            rows = evenly(read_corpus(corpus, data_dir / corpus), n)
            paths = native_tree(rows, rate, data_dir / corpus, tmp / corpus)
            seconds = sum(sf.info(p).duration for p in paths)
            cache = tmp / f"cache_{corpus}"

            def run_librosa(paths=paths):
                return [librosa.load(p, sr=16000)[0] for p in paths]

            def run_ours_cached(paths=paths, cache=cache):
                audio = load_or_decode(paths, 16000, cache)
                return float(np.asarray(audio.samples).sum())  # touch every sample

            # Warm-up: page cache for the files, librosa's lazy imports, the filled cache.
            ref = run_librosa()
            ours = decode_files(paths, 16000, workers=1)
            load_or_decode(paths, 16000, cache)
            # librosa fixes the output length to ceil(n * 16000 / rate); soxr may give one sample less.
            n_common = [min(ours.wave(i).shape[0], ref[i].shape[0]) for i in range(len(paths))]
            len_diff = max(abs(ours.wave(i).shape[0] - ref[i].shape[0]) for i in range(len(paths)))
            diff = max(float(np.abs(ours.wave(i)[:n] - ref[i][:n]).max()) for i, n in enumerate(n_common))
            times = {k: [] for k in ("librosa", "one", "all", "cache")}
            loads = []
            for _ in range(args.repeats):  # interleaved, so load changes hit all variants alike
                loads.append(load_avg())
                times["librosa"].append(timed(run_librosa))
                times["one"].append(timed(lambda paths=paths: decode_files(paths, 16000, workers=1)))
                times["all"].append(timed(lambda paths=paths: decode_files(paths, 16000, workers=workers)))
                times["cache"].append(timed(run_ours_cached))
            # Speed-up: median over repeats of the ratio within each repeat (same load for both).
            m = {k: median([lib / t for lib, t in zip(times["librosa"], v, strict=True)]) for k, v in times.items()}
            lines.append(
                f"| {corpus} ({rate} Hz WAV) | {len(paths)} | {seconds / 60:.1f} min | {fmt_runs(times['librosa'])} | "
                f"{fmt_runs(times['one'])} | {fmt_runs(times['all'])} | {fmt_runs(times['cache'], digits=4)} | "
                f"{m['one']:.2f}x / {m['all']:.2f}x / {m['cache']:.0f}x | {diff:.1e} (lengths within {len_diff} sample) |"
            )
            load_notes.append(f"{corpus} {', '.join(loads)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines.append(f"\nLoad average (1 min) at each repeat: {'; '.join(load_notes)}.")
    lines.append(
        f"Load average (1 min) at the end: {load_avg()}. Times: median of {args.repeats} runs; speed-ups: median "
        "of the per-run ratios (librosa time / ours, both measured in the same run, one after the other)."
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
