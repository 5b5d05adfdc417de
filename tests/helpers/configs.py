"""Composing the real Hydra configs (conf/) in-process, as train.py and predict.py do."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from tests.conftest import REPO

FAST = ["trainer=cpu", "trainer.max_epochs=1", "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=2",
        "+trainer.limit_test_batches=2", "data.batch_size=16", "callbacks.progress_bar.refresh_rate=0"]


def compose_train(overrides: list[str], output_dir: Path, data_dir: Path, cache_dir: Path):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.data_dir = str(data_dir)
        cfg.paths.cache_dir = str(cache_dir)
    return cfg


def compose_predict(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("predict", overrides=[*overrides, "progress=false"])
