"""Benchmark 4, memory: peak resident memory (RSS) of a whole training run and the size
of the waveform cache.

Runs ``train.py`` (the real entry point: decode or load the cache, fit, test the best
checkpoint, write the report) as a child process, twice: with an empty cache folder
(the first run decodes the corpus) and again with the filled cache. The peak RSS of each
child comes from ``wait4`` (Linux ``ru_maxrss``, as ``/usr/bin/time -v`` reports it).

Usage: python -m bench.memory [--epochs 2] [overrides ...]   (default: data=tess model=cnn2d)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, header, load_avg


def run_train(overrides: list[str], out: Path, cache: Path) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one ``train.py`` run."""
    cmd = [sys.executable, str(REPO / "train.py"), *overrides, f"hydra.run.dir={out}", f"paths.cache_dir={cache}"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr.read().decode()[-3000:]}")
    return usage.ru_maxrss / 1024, wall  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("overrides", nargs="*", default=[])
    args = parser.parse_args()
    overrides = ["data=tess", "model=cnn2d", "trainer=cpu", "logger=csv", "callbacks.progress_bar.refresh_rate=0",
                 f"trainer.max_epochs={args.epochs}", *args.overrides]
    tmp = Path(tempfile.mkdtemp(prefix="ser_bench_memory_"))
    try:
        cache = tmp / "cache"
        rows = []
        for label in ("empty cache (decodes the corpus)", "filled cache (memory map)"):
            load = load_avg()
            out = tmp / f"run{len(rows)}"
            rss, wall = run_train(overrides, out, cache)
            metrics = json.loads((out / "metrics.json").read_text())
            rows.append((label, rss, wall, load, metrics))
        cache_bytes = sum(p.stat().st_size for p in cache.iterdir())
        n_files = sum(1 for p in cache.glob("*.npy"))
        samples = sum(p.stat().st_size for p in cache.glob("*.npy")) / 4
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    m = rows[0][4]
    lines = [header(f"Memory: peak RSS of `train.py {' '.join(overrides)}`")]
    lines.append(f"Corpus: {m['n_train'] + m['n_val'] + m['n_test']} files ({m['split']}); {args.epochs} epochs, then test.\n")
    lines.append("| run | peak RSS | wall time | load avg at start |")
    lines.append("|---|---|---|---|")
    for label, rss, wall, load, _ in rows:
        lines.append(f"| {label} | {rss:.0f} MiB | {wall:.0f} s | {load} |")
    lines.append(
        f"\nWaveform cache: {cache_bytes / 2**20:.1f} MiB on disk in {n_files} .npy file(s) + offsets JSON "
        f"({samples / 16000 / 3600:.2f} h of 16 kHz float32 audio). Load average at the end: {load_avg()}."
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
