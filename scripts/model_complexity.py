"""Parameters and multiply-accumulates (MACs) per second of audio of every backbone.

    python scripts/model_complexity.py            # prints a Markdown table

MACs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2) on one
second of audio: 101 frames at the 10 ms hop of ``features=logmel`` / ``mfcc`` and 63
frames at the 16 ms hop of ``features=seed``. The feature front-end is not counted.
Convolutions scale linearly with the frame count, so MACs per second hold for any clip
length up to the pooling layers (negligible). The Conformer's attention products
(Q K^T and weights x V; the CPU's fused attention kernel, which FlopCounterMode does not
count) are left out: 0.4 M MACs more at 1 s (3 %), 4.5 M at 3.5 s (11 %), growing with the
square of the 4x-subsampled steps; its projections are counted.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from ser_lightning.transforms.features import FeatureConfig
from ser_lightning.models.backbones import BACKBONES, build_backbone

FEATURE_SETS = {
    "logmel": FeatureConfig(kind="logmel"),
    "mfcc": FeatureConfig(kind="mfcc"),
    "seed": FeatureConfig(kind="seed", n_fft=1024, win_length=1024, hop_length=256),
}


#: Backbones of recipes that change a model's defaults: (label, model, backbone arguments, feature set).
RECIPES = [
    ("cnn1d, channels 96-192-384 (`experiment=speaker_independent`)", "cnn1d", {"channels": [96, 192, 384]}, "mfcc"),
]


def complexity(name: str, features: FeatureConfig, n_classes: int = 7, **backbone) -> tuple[int, float]:
    """``(parameters, MACs per second of audio)`` of backbone ``name`` on ``features``
    (``backbone``: arguments that replace the model's defaults)."""
    net = build_backbone(name, features.n_features, n_classes, **backbone).eval()
    frames = features.n_frames(features.sample_rate)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.randn(1, features.n_features, frames))
    return sum(p.numel() for p in net.parameters()), counter.get_total_flops() / 2


def table_row(label: str, name: str, kind: str, **backbone) -> str:
    """One Markdown row: ``label``, the feature set's shape, parameters and MACs."""
    features = FEATURE_SETS[kind]
    params, macs = complexity(name, features, **backbone)
    return f"| {label} | {kind} ({features.n_features} x {features.n_frames(features.sample_rate)}) | {params / 1e3:.1f} k | {macs / 1e6:.1f} M |"


def main() -> None:
    print("| model | features | parameters | MACs per second of audio |")
    print("|---|---|---|---|")
    for name in BACKBONES:
        for kind in FEATURE_SETS:
            print(table_row(name, name, kind))
    for label, name, backbone, kind in RECIPES:
        print(table_row(label, name, kind, **backbone))


if __name__ == "__main__":
    main()
