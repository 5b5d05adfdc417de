"""Augmentation cost: milliseconds per training batch of each device-side waveform
augmentation (every example augmented, ``p = 1``), of the log-mel front-end for
comparison, and of the whole ``conf/augment/<config>.yaml`` waveform chain at its
configured probabilities (what a training step pays on average).

Input: white noise, ``--batch`` clips of ``--seconds`` at 16 kHz (the cost of these
operations does not depend on the content). The figures are medians of ``--repeats``
timed calls after one warm-up call; on CUDA each call is synchronised.

Usage: python -m bench.augment [--batch 32] [--seconds 2.5] [--repeats 5] [--config channel] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse

import torch
from omegaconf import OmegaConf

from bench.common import REPO, fmt_runs, header, load_avg, median, timed

from ser_lightning.transforms.augment import WAVEFORM_AUGMENTS, build_chain
from ser_lightning.transforms.features import FeatureConfig, FeatureExtractor

SR = 16000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=2.5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--config", default="channel", help="conf/augment/<config>.yaml: settings, and the chain timed as a whole")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    cfg = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "augment" / f"{args.config}.yaml"), resolve=True)

    torch.manual_seed(0)
    waves = torch.randn(args.batch, int(args.seconds * SR), device=device) * 0.1
    steps = {}
    for name in WAVEFORM_AUGMENTS:  # each with the config's settings (defaults if absent), at p = 1
        steps[name] = build_chain({name: {**(cfg.get(name) or {}), "p": 1.0}}, WAVEFORM_AUGMENTS, sample_rate=SR).to(device)
    steps["features (log-mel 64, for comparison)"] = FeatureExtractor(FeatureConfig(kind="logmel")).to(device)
    steps[f"augment={args.config} waveform chain, configured p"] = build_chain(cfg, WAVEFORM_AUGMENTS, sample_rate=SR).to(device)

    def run(module: torch.nn.Module) -> None:
        with torch.inference_mode():
            module(waves)
        if device.type == "cuda":
            torch.cuda.synchronize()

    times, loads = {}, []
    for name, module in steps.items():
        run(module)  # warm-up
        loads.append(load_avg())
        times[name] = [timed(lambda m=module: run(m)) for _ in range(args.repeats)]
    lines = [header(f"Augmentation: ms per batch of {args.batch} clips x {args.seconds:g} s at 16 kHz (device: {device})")]
    lines.append("| step | time per batch | per clip |")
    lines.append("|---|---|---|")
    for name, values in times.items():
        ms = [1000 * v for v in values]
        lines.append(f"| {name} | {fmt_runs(ms, unit='ms', digits=1)} | {median(ms) / args.batch:.2f} ms |")
    lines.append(f"\nSettings from conf/augment/{args.config}.yaml. Load average (1 min) before each step: "
                 f"{', '.join(loads)}; at the end {load_avg()}. Median of {args.repeats} runs after a warm-up.")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
