"""Shared fixtures: the real corpora, found as ``make`` finds them: $SER_DATA_DIR, else the
project's data/ when it holds tess/ (what ``make train`` downloads), else ../shared/data."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("PROJECT_ROOT", str(REPO))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def _data_dir() -> Path:
    """The data root, in the Makefile's order (docs/DATA.md, "Where the data is")."""
    if os.environ.get("SER_DATA_DIR"):
        return Path(os.environ["SER_DATA_DIR"]).expanduser().resolve()
    if (REPO / "data" / "tess").is_dir():
        return (REPO / "data").resolve()
    return (REPO.parent / "shared" / "data").resolve()


#: Corpus folders below the data root that test modules read directly.
CORPUS_FOLDERS = ("tess", "ravdess", "savee", "crema_d", "originals")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Root holding tess/, ravdess/, savee/, crema_d/, originals/."""
    root = _data_dir()
    if not (root / "tess").is_dir():
        pytest.skip(f"corpora not found at {root}: set SER_DATA_DIR, or run `make train` (downloads TESS into data/)")
    return root


def _test_source(request) -> str:
    """The source of the test function and of the fixtures of its module it uses (the whole
    module when that cannot be read)."""
    import inspect

    try:
        parts = [inspect.getsource(request.function)]
        for name in request.fixturenames:
            obj = getattr(request.module, name, None)
            if obj is not None and not isinstance(obj, (str, int, float)):
                try:
                    unwrap = getattr(obj, "_get_wrapped_function", None)  # pytest >= 8.4 wraps fixture functions
                    parts.append(inspect.getsource(getattr(obj, "__wrapped__", unwrap() if unwrap else obj)))
                except (TypeError, OSError):
                    pass
        return "\n".join(parts)
    except (TypeError, OSError):
        return Path(str(request.node.fspath)).read_text(encoding="utf-8")


@pytest.fixture(autouse=True)
def _corpora_present(request):
    """Skip a test that uses the corpora when it (or a fixture of its module it uses) names a
    corpus folder the data root lacks (e.g. only TESS after ``make train``), naming the
    folder, instead of failing on a missing path. On the shared copies every folder is
    there and nothing is skipped."""
    if "data_dir" not in request.fixturenames and "originals" not in request.fixturenames:
        return
    root = _data_dir()
    if not (root / "tess").is_dir():
        return  # data_dir skips the test itself
    absent = [c for c in CORPUS_FOLDERS if not (root / c).is_dir()]
    if not absent:
        return
    source = _test_source(request)
    missing = [c for c in absent if re.search(rf"[\"'/=]{c}[\"'/]|\b{c}\b(?=\s*[,)\]])", source)]
    if "originals" in request.fixturenames and "originals" not in missing and not (root / "originals").is_dir():
        missing.append("originals")
    if missing:
        hint = ", ".join(f"make data CORPUS={c}" for c in missing if c != "originals")
        pytest.skip(f"needs {', '.join(missing)} below {root}" + (f" ({hint})" if hint else " (the development machines' shared copies)"))


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


@pytest.fixture(scope="session")
def fitted_ckpt(tmp_path_factory, data_dir) -> Path:
    """:func:`ckpt`'s model fitted for 40 steps instead of 12: it labels its own training
    clips correctly and confidently (tests where distinct labels must survive a browser's
    resampling: tests/test_serving_page.py). About 15 s of CPU, once per session."""
    from tests.helpers.checkpoints import trained_checkpoint

    return trained_checkpoint(tmp_path_factory.getbasetemp() / "fitted_ser.ckpt", data_dir, steps=40)

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
