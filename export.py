"""Export a trained model with its feature front-end:
python export.py ckpt_path=outputs/.../checkpoints/best.ckpt format=onnx [output=model.onnx]
python export.py ckpt_path=... format=torchscript

The exported model maps a waveform batch [batch, samples] (float32, mono, at the model's
sample rate) to class probabilities [batch, n_classes]; see the README, "Export".
"""

import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
def main(cfg: DictConfig) -> None:
    from ser_lightning.cli.export import run_export

    raise SystemExit(run_export(cfg))


if __name__ == "__main__":
    main()
