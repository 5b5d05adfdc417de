"""``python -m ser_lightning.cli.explore data=<corpus> [out=<folder>]`` (or ``ser-explore``):
a corpus's class balance, durations, speakers and example spectrograms
(:func:`ser_lightning.data.explore.explore`)."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ser_lightning.errors import SERUserError


def run_explore(cfg: DictConfig) -> int:
    """Explore ``cfg.data`` into ``cfg.out``; returns the exit code: 0, or 2 on a user
    error (missing corpus, bad setting)."""
    from ser_lightning.data.explore import explore

    out = cfg.out
    try:
        summary = explore(OmegaConf.to_container(cfg.data, resolve=True), OmegaConf.to_container(cfg.features, resolve=True), out)
    except SERUserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{summary['corpus']}: {summary['usable']} of {summary['files']} files, classes {summary['classes']}")
    print(f"wrote {len(list(Path(out).glob('*.png')))} PNGs and summary.json into {out}")
    return 0


if __name__ == "__main__":
    from ser_lightning.cli.common import exit_with, hydra_app

    exit_with(hydra_app("explore", run_explore))
