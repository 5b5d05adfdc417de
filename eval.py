"""Test a checkpoint on a corpus: python eval.py ckpt_path=<run>/checkpoints/best.ckpt data=ravdess

Labels are mapped onto the model's classes through the shared emotion set; labels the
model does not know are mapped (``label_map``), dropped, or stop the run
(``unknown_labels=map|drop|error``) and are reported either way. Prints WAR, UAR and
macro-F1 and writes metrics.json into the run directory (outputs/eval/<date>/<time>).
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    from ser_lightning.cli.eval import run_eval

    code = run_eval(cfg)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
