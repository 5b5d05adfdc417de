"""Explore a corpus before training: class balance, durations, speakers, example spectrograms:
python explore.py data=ravdess [out=<folder>]   (also: ser-explore, python -m ser_lightning.cli.explore)
"""

import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="explore")
def main(cfg: DictConfig) -> None:
    from ser_lightning.cli.explore import run_explore

    raise SystemExit(run_explore(cfg))


if __name__ == "__main__":
    main()
