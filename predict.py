"""Predict emotions with a trained checkpoint:
python predict.py ckpt_path=outputs/.../checkpoints/best.ckpt input=clip.wav [output=preds.csv]
"""

import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    from ser_lightning.cli.predict import run_predict

    raise SystemExit(run_predict(cfg))


if __name__ == "__main__":
    main()
