"""Training-step micro-benchmark: forward + backward + AdamW step of a backbone on a fixed
batch of features, comparing memory formats / torch.compile in the same process
(variants interleaved, so machine load hits them alike).

Usage: python -m bench.model_step [--model cnn2d] [--batch 32] [--repeats 7] [--steps 5] [--compile]
"""

from __future__ import annotations

import argparse
import copy

import torch

from bench.common import header, load_avg, median, timed

from ser_lightning.models.backbones import build_backbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="cnn2d")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--frames", type=int, default=251, help="2.5 s at a 10 ms hop")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed run")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    feats = torch.randn(args.batch, 64, args.frames)
    targets = torch.randint(0, 7, (args.batch,))
    base = build_backbone(args.model, 64, 7)
    variants = {"default (contiguous)": copy.deepcopy(base)}
    if args.model == "cnn2d":
        variants["channels-last"] = copy.deepcopy(base).to(memory_format=torch.channels_last)
    if args.compile:
        variants["torch.compile"] = torch.compile(copy.deepcopy(base))
    steps = {}
    for name, net in variants.items():
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

        def step(net=net, opt=opt):
            for _ in range(args.steps):
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(net(feats), targets).backward()
                opt.step()

        step()  # warm-up (and compilation)
        steps[name] = step
    times = {k: [] for k in steps}
    loads = []
    for _ in range(args.repeats):
        loads.append(load_avg())
        for name, fn in steps.items():
            times[name].append(timed(fn) / args.steps)
    base_name = "default (contiguous)"
    lines = [header(f"Training step of {args.model}: batch {args.batch} x 64 x {args.frames}")]
    lines.append("| variant | ms per step | clips/s | speed-up (per-run ratio) |")
    lines.append("|---|---|---|---|")
    for name, v in times.items():
        ratio = median([b / t for b, t in zip(times[base_name], v, strict=True)])
        lines.append(f"| {name} | {1000 * median(v):.0f} (runs: {', '.join(f'{1000 * t:.0f}' for t in v)}) | "
                     f"{args.batch / median(v):.1f} | {ratio:.2f}x |")
    lines.append(f"\nLoad average (1 min) at each repeat: {', '.join(loads)}; at the end {load_avg()}.")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
