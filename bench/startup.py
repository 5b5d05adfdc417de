"""Start-up of ``python predict.py`` on one short file: the whole process, wall clock.

    python -m bench.startup --ckpt best.ckpt --input clip3s.wav [--repeats 5] [--checkout DIR]

Runs ``python predict.py ckpt_path=<ckpt> input=<file>`` ``--repeats`` times in the
checkout ``--checkout`` (default: this one; another checkout, e.g. an older commit in a
``git worktree``, gives the "before" figure with the same checkpoint and file) with
``OMP_NUM_THREADS=1`` and that checkout's ``src`` first on ``PYTHONPATH``, and prints the
runs and their median. What it measures is mostly imports (Python, torch, torchaudio,
Hydra and whatever the prediction path pulls in): the model itself needs milliseconds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, fmt_runs, header, load_avg


def run_once(checkout: Path, ckpt: Path, audio: Path, out_dir: Path) -> float:
    """Wall seconds of one ``predict.py`` process.

    Raises:
        RuntimeError: the process failed (its stderr is in the message).
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(checkout / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "predict.py", f"ckpt_path={ckpt}", f"input={audio}", "progress=false", f"hydra.run.dir={out_dir}"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"predict.py failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, required=True, help="a checkpoint written by train.py")
    parser.add_argument("--input", type=Path, required=True, help="one short audio file (3 s in docs/PERFORMANCE.md)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--checkout", type=Path, default=REPO, help="the checkout whose predict.py runs (default: this one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs, loads = [], []
        for k in range(args.repeats):
            runs.append(run_once(args.checkout.resolve(), args.ckpt.resolve(), args.input.resolve(), Path(tmp) / str(k)))
            loads.append(load_avg())
    print(header("Start-up: python predict.py on one file"))
    print(f"Checkout: {args.checkout.resolve()}; input: {args.input.name}; load average after each run: {', '.join(loads)}\n")
    print(f"| wall time per process | {fmt_runs(runs, digits=2)} |")


if __name__ == "__main__":
    main()
