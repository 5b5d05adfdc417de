"""Benchmark 5, scaling: the time of one training epoch at 25 %, 50 % and 100 % of a
corpus's training part (``data.subset_fraction``: a seeded, class-stratified subset,
validation and test unchanged). Linear scaling means a constant time per clip.

Each fraction trains ``--epochs`` epochs (no validation); the first is warm-up, the
figure is the median of the others.

Usage: python -m bench.scaling [--model cnn1d] [--fractions 0.25 0.5 1.0] [--epochs 4] [overrides ...]
"""

from __future__ import annotations

import argparse

import torch

from bench.common import header, load_avg, median
from bench.train_throughput import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="cnn1d")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    opts = argparse.Namespace(epochs=args.epochs, workers="auto", channels_last=False, compile=False,
                              device="cuda" if torch.cuda.is_available() else "cpu")
    lines = [header(f"Scaling: one training epoch of {args.model} at a share of the training part")]
    lines.append("| share of training part | clips / epoch | epoch time (epochs 2+) | ms per clip | time relative to 100 % | load avg per epoch |")
    lines.append("|---|---|---|---|---|---|")
    results = []
    for fraction in args.fractions:
        opts.subset = fraction
        r = run(args.model, opts, args.overrides)
        results.append((fraction, r, median(r["epoch_s"][1:])))
    full = max(results, key=lambda t: t[0])[2]
    for fraction, r, seconds in results:
        runs = ", ".join(f"{v:.1f}" for v in r["epoch_s"][1:])
        lines.append(f"| {100 * fraction:.0f} % | {r['clips']} | {seconds:.1f} s (epochs: {runs}) | {1000 * seconds / r['clips']:.1f} | "
                     f"{seconds / full:.2f} | {', '.join(r['loads'])} |")
    lines.append(f"\nLoad average (1 min) at the end: {load_avg()}.")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
