"""Train a speech emotion classifier: python train.py model=cnn2d data=tess

Hydra composes conf/train.yaml; see the README for the config groups. Returns the
metric named by ``optimized_metric`` (validation UAR by default) for sweepers.
"""

import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from ser_lightning.cli.train import run_train

    return run_train(cfg)


if __name__ == "__main__":
    main()
