"""Live emotion from a microphone or a file:
python stream.py ckpt_path=outputs/.../checkpoints/best.ckpt source=mic [device=<index|name>] [timeline=live.csv]
python stream.py ckpt_path=... source=session.wav realtime=false
python stream.py list_devices=true
"""

import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="stream")
def main(cfg: DictConfig) -> None:
    from ser_lightning.cli.stream import run_stream

    raise SystemExit(run_stream(cfg))


if __name__ == "__main__":
    main()
