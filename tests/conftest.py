"""Shared fixtures: the real corpora under ../shared/data (or $SER_DATA_DIR)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("PROJECT_ROOT", str(REPO))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def _data_dir() -> Path:
    return Path(os.environ.get("SER_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Root holding tess/, ravdess/, savee/, crema_d/, originals/."""
    root = _data_dir()
    if not (root / "tess").is_dir():
        pytest.skip(f"shared corpora not found at {root} (set SER_DATA_DIR)")
    return root


@pytest.fixture(scope="session")
def originals(data_dir: Path) -> Path:
    return data_dir / "originals"


def write_tone(path: Path, seconds: float = 1.0, sr: int = 16000, freq: float = 220.0, channels: int = 1, fmt: str | None = None) -> Path:
    """Write a sine tone (plus a little noise) as an audio file; returns ``path``."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(int(freq))
    wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.shape)
    if channels > 1:
        wave = np.stack([wave] * channels, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave.astype(np.float32), sr, format=fmt)
    return path


def corrupt_middle(src: Path, dst: Path, start: float = 0.4, end: float = 0.6, seed: int = 0) -> Path:
    """Copy ``src`` to ``dst`` with the bytes from ``start`` to ``end`` (fractions of the
    file size) replaced by random bytes: a valid header and damaged data, the way a
    FLAC file breaks in a bad copy (libsndfile: "flac decoder lost sync"). Returns ``dst``."""
    data = bytearray(src.read_bytes())
    a, b = int(len(data) * start), int(len(data) * end)
    data[a:b] = np.random.default_rng(seed).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory, data_dir) -> Path:
    """A small trained cnn2d checkpoint in train.py's layout (tests/helpers/checkpoints.py),
    trained once per session."""
    from tests.helpers.checkpoints import trained_checkpoint  # imports Lightning: only for the tests that use it

    return trained_checkpoint(tmp_path_factory.getbasetemp() / "trained_ser.ckpt", data_dir)


#: Backbones beside the CNNs (docs/ARCHITECTURES.md) that the inference-path tests also run on,
#: narrowed (the same kinds of layer, fewer and narrower) so that training and ONNX export take seconds.
FIELD_BACKBONES = {
    "ecapa": {"name": "ecapa", "channels": [32, 32, 96], "kernel_sizes": [5, 3, 1], "dilations": [1, 2, 1],
              "res2net_scale": 4, "attention_channels": 16, "se_channels": 16, "embed_dim": 32},
    "conformer": {"name": "conformer", "d_model": 32, "num_heads": 2, "ffn_dim": 64, "num_layers": 1},
}


@pytest.fixture(scope="session")
def backbone_ckpt(tmp_path_factory, data_dir):
    """``backbone_ckpt(name)``: a checkpoint of backbone ``name`` (:data:`FIELD_BACKBONES`'
    settings) trained for a few steps like :func:`ckpt` (the cnn2d one for ``"cnn2d"``), once per session."""
    from tests.helpers.checkpoints import trained_checkpoint

    def make(name: str) -> Path:
        if name == "cnn2d":
            return trained_checkpoint(tmp_path_factory.getbasetemp() / "trained_ser.ckpt", data_dir)
        return trained_checkpoint(tmp_path_factory.getbasetemp() / f"trained_{name}.ckpt", data_dir, steps=6,
                                  backbone=FIELD_BACKBONES[name], lr=3e-3)

    return make


@pytest.fixture(scope="module")
def predictor(ckpt):
    """A CPU :class:`~ser_lightning.inference.predictor.Predictor` of :func:`ckpt` (one per test module)."""
    from ser_lightning.inference.predictor import Predictor

    return Predictor.from_checkpoint(ckpt, device="cpu")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A waveform cache shared by the trainings of one test module."""
    return tmp_path_factory.mktemp("waveform_cache")
