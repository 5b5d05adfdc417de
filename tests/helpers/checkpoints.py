"""A small trained checkpoint for prediction and export tests, built in seconds.

The model is fitted directly (no DataModule, no waveform cache) on a handful of real
TESS clips, so its weights and BatchNorm statistics are those of a trained network
(confident, non-uniform outputs), and it is saved in the layout ``train.py`` writes:
``{"state_dict": ..., "hyper_parameters": ...}``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from ser_lightning.data.audio import fit_length, load_audio
from ser_lightning.transforms.features import FeatureConfig, FeatureExtractor
from ser_lightning.models.module import SERModule

CLASSES = ["neutral", "happy", "sad", "angry"]
CLIPS_PER_CLASS = 8
CLIP_SECONDS = 3.0


def training_clips(data_dir: Path) -> list[tuple[Path, int]]:
    """``CLIPS_PER_CLASS`` TESS files per class of :data:`CLASSES` (both speakers)."""
    out = []
    for k, emotion in enumerate(CLASSES):
        files = sorted((data_dir / "tess").glob(f"*_{emotion}/*_{emotion}.flac"))
        out += [(f, k) for f in files[:: max(1, len(files) // CLIPS_PER_CLASS)][:CLIPS_PER_CLASS]]
    return out


#: The backbone of :func:`trained_checkpoint` by default: a small cnn2d.
TINY_CNN2D = {"name": "cnn2d", "channels": [8, 16, 32, 64]}


def trained_checkpoint(path: Path, data_dir: Path, steps: int = 12, seed: int = 0, backbone: dict | None = None,
                       lr: float = 1e-2) -> Path:
    """Fit a backbone (default :data:`TINY_CNN2D`) on :func:`training_clips` for ``steps``
    Adam steps and save it to ``path`` (reused when it exists, so a test session trains once)."""
    if path.is_file():
        return path
    torch.manual_seed(seed)
    config = FeatureConfig(kind="logmel")
    module = SERModule(dict(backbone or TINY_CNN2D), CLASSES, config.to_dict(), CLIP_SECONDS)
    clips = training_clips(data_dir)
    samples = int(CLIP_SECONDS * config.sample_rate)
    waves = torch.from_numpy(np.stack([fit_length(load_audio(f, config.sample_rate), samples) for f, _ in clips]))
    labels = torch.tensor([k for _, k in clips])
    with torch.no_grad():
        feats = FeatureExtractor(config)(waves)
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    module.train()
    for _ in range(steps):
        idx = torch.randperm(len(labels), generator=generator)[:32]
        loss = torch.nn.functional.cross_entropy(module(feats[idx]), labels[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": "2.6"}, path)
    return path


def run_script(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run an entry point of this checkout (its src/ first on the path, whatever the cwd)."""
    from tests.conftest import REPO

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def run_predict(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_script("predict.py", *args, "progress=false", cwd=cwd)
