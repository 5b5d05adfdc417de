"""Serve a checkpoint over HTTP and WebSocket, with a browser page:
python serve.py ckpt_path=outputs/.../checkpoints/best.ckpt [port=8000]
then open http://127.0.0.1:8000/ (speak into the microphone, or upload a file).
"""

import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="serve")
def main(cfg: DictConfig) -> None:
    from ser_lightning.cli.serve import run_serve

    raise SystemExit(run_serve(cfg))


if __name__ == "__main__":
    main()
