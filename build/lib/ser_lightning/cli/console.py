"""The ``ser-*`` console commands (``[project.scripts]`` in pyproject.toml): the same
Hydra applications as the scripts at the repository root, usable from any directory.

    ser-train model=cnn1d data=savee        = python train.py ...
    ser-predict ckpt_path=best.ckpt input=clip.wav
    ser-eval ckpt_path=best.ckpt data=ravdess
    ser-export ckpt_path=best.ckpt format=onnx
    ser-stream ckpt_path=best.ckpt source=mic
    ser-serve ckpt_path=best.ckpt           = python serve.py ...
    ser-explore data=ravdess                = python -m ser_lightning.cli.explore ...
    ser-download ravdess accept_licence=true = python -m ser_lightning.cli.download ...

The configs are the checkout's ``conf/`` (``$SER_CONFIG_DIR`` overrides it); as with
``python train.py``, ``paths.root_dir`` (``$PROJECT_ROOT``) is the checkout, so runs
are written to its ``outputs/``, while relative paths on the command line (``input=``,
``ckpt_path=``) are read from the directory the command runs in (Hydra does not change
directory: ``hydra.job.chdir=false``).
"""

from __future__ import annotations

from ser_lightning.cli.common import exit_with, hydra_app


def train() -> None:
    """``ser-train``: :func:`ser_lightning.cli.train.run_train` (returns the optimised metric to a sweeper)."""
    from ser_lightning.cli.train import run_train

    hydra_app("train", run_train)


def predict() -> None:
    """``ser-predict``: :func:`ser_lightning.cli.predict.run_predict`; exit code 0, 1 or 2."""
    from ser_lightning.cli.predict import run_predict

    exit_with(hydra_app("predict", run_predict))


def evaluate() -> None:
    """``ser-eval``: :func:`ser_lightning.cli.eval.run_eval`; exit code 0 or 2."""
    from ser_lightning.cli.eval import run_eval

    exit_with(hydra_app("eval", run_eval))


def export() -> None:
    """``ser-export``: :func:`ser_lightning.cli.export.run_export`; exit code 0, 1 or 2."""
    from ser_lightning.cli.export import run_export

    exit_with(hydra_app("export", run_export))


def stream() -> None:
    """``ser-stream``: :func:`ser_lightning.cli.stream.run_stream`; exit code 0, 1 or 2."""
    from ser_lightning.cli.stream import run_stream

    exit_with(hydra_app("stream", run_stream))


def serve() -> None:
    """``ser-serve``: :func:`ser_lightning.cli.serve.run_serve`; exit code 0 or 2."""
    from ser_lightning.cli.serve import run_serve

    exit_with(hydra_app("serve", run_serve))


def explore() -> None:
    """``ser-explore``: ``python -m ser_lightning.cli.explore``."""
    from ser_lightning.cli.explore import run_explore

    exit_with(hydra_app("explore", run_explore))


def download() -> None:
    """``ser-download``: ``python -m ser_lightning.cli.download`` (argparse, no Hydra)."""
    from ser_lightning.cli.download import main

    exit_with(main())
