"""model=ssl end to end with a tiny random WavLM-family encoder: train on a TESS subset
(through the embedding cache), then predict.py, eval.py and stream.py on the checkpoint,
which carries the head only and finds the encoder's weight file by its recorded path and hash."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
import torch

from ser_lightning.errors import ConfigError, EncoderWeightsError
from ser_lightning.inference.export import export_checkpoint
from ser_lightning.inference.predictor import Predictor
from ser_lightning.models.checkpoint import load_checkpoint
from ser_lightning.training.pipeline import train
from tests.conftest import REPO
from tests.helpers.configs import compose_train
from tests.helpers.encoders import tess_subset, tiny_overrides, tiny_weights

CLASSES = ["neutral", "happy", "sad", "angry", "fear", "disgust", "surprise"]


@pytest.fixture(scope="module")
def ssl_run(tmp_path_factory, data_dir):
    """A TESS subset (every 8th file: 350 recordings, 7 classes, both speakers) as a
    manifest, so the test decodes and encodes seconds of audio, not the whole corpus."""
    root = tmp_path_factory.mktemp("ssl")
    manifest = tess_subset(root, data_dir)
    weights = tiny_weights(root / "weights" / "tiny_wavlm.pth")
    out = root / "run"
    cfg = compose_train(["data=manifest", f"data.root={manifest}", "data.split=random", *tiny_overrides(weights, root / "emb"),
                         "trainer=cpu", "trainer.max_epochs=8", "logger=none", "data.batch_size=32", "model.optimizer.lr=0.01",
                         "callbacks.progress_bar.refresh_rate=0"], out, data_dir, root / "wave_cache")
    metrics = train(cfg)
    return out, weights, root, metrics


def _env(root):
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "TORCH_HOME": str(root / "torch_home")}


def test_head_learns_tess_above_chance_and_checkpoint_refers_to_the_weights(ssl_run):
    out, weights, root, metrics = ssl_run
    report = json.loads((out / "metrics.json").read_text())
    # 7 classes: chance is 14.3 %; random-split TESS (speakers shared), windows scoring
    assert report["test/uar"] > 0.35, report["test/uar"]
    # every scoring window of the training files was encoded once, before epoch 1
    fill = report["embedding_cache"]
    assert fill["computed"] == fill["windows"] >= report["n_train"]
    ckpt = load_checkpoint(out / "checkpoints" / "best.ckpt")
    enc = ckpt["hyper_parameters"]["encoder"]
    assert enc["weights"] == str(weights.resolve()) and len(enc["sha256"]) == 64
    assert not any(k.startswith("net.encoder.") for k in ckpt["state_dict"])  # frozen weights stay in their file
    assert (out / "checkpoints" / "best.ckpt").stat().st_size < weights.stat().st_size * 2
    # training cached every scored window: scoring the test part again never runs the encoder
    predictor = Predictor.from_checkpoint(out / "checkpoints" / "best.ckpt", device="cpu")
    with (out / "splits" / "test.csv").open() as fh:
        paths = [r["path"] for r in csv.DictReader(fh)][:40]
    preds = predictor.predict(paths)
    assert all(p.error is None for p in preds)
    cache = predictor.model.cache
    assert cache.misses == 0 and cache.hits >= 40
    # AdaBN applies to the head's BatchNorm; its statistics move, the encoder is untouched
    adapted = predictor.adapted(paths[:20])
    assert adapted.adaptation["inputs"] == 20
    bn0, bn1 = predictor.unfolded_model.head[0], adapted.unfolded_model.head[0]
    assert not torch.allclose(bn0.running_mean, bn1.running_mean)
    assert all(p.error is None for p in adapted.predict(paths[20:25]))
    ensemble = Predictor.from_checkpoint([out / "checkpoints" / "best.ckpt", out / "checkpoints" / "last.ckpt"], device="cpu")
    assert all(p.error is None and abs(sum(p.probabilities.values()) - 1) < 1e-5 for p in ensemble.predict(paths[:3]))
    with pytest.raises(ConfigError, match="export of a pretrained-encoder model"):
        export_checkpoint(out / "checkpoints" / "best.ckpt", output=out / "m.onnx")


def test_wrong_or_missing_weight_file_is_one_clear_error(ssl_run, tmp_path, monkeypatch):
    out, weights, root, _ = ssl_run
    ckpt = torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)
    other = tiny_weights(tmp_path / "other.pth", seed=5)
    ckpt["hyper_parameters"]["encoder"]["weights"] = str(other)
    torch.save(ckpt, tmp_path / "wrong.ckpt")
    with pytest.raises(EncoderWeightsError, match="not the file this model was trained with"):
        Predictor.from_checkpoint(tmp_path / "wrong.ckpt", device="cpu")
    ckpt["hyper_parameters"]["encoder"]["weights"] = str(tmp_path / "moved" / "tiny_wavlm.pth")
    torch.save(ckpt, tmp_path / "moved.ckpt")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # the torch hub cache lacks it too
    with pytest.raises(EncoderWeightsError) as err:
        Predictor.from_checkpoint(tmp_path / "moved.ckpt", device="cpu")
    msg = str(err.value)
    assert "moved/tiny_wavlm.pth not found" in msg and "torch_home/hub/checkpoints/wavlm_base_plus.pth" in msg
    assert "ser_lightning.cli.download encoder=wavlm_base_plus" in msg


def test_predict_eval_and_stream_commands(ssl_run, originals, tmp_path):
    out, _, root, _ = ssl_run
    best = out / "checkpoints" / "best.ckpt"
    preds = tmp_path / "preds.csv"
    proc = subprocess.run([sys.executable, str(REPO / "predict.py"), f"ckpt_path={best}", f"input={originals / 'tess'}",
                           f"output={preds}"], capture_output=True, text=True, cwd=tmp_path, env=_env(root), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with preds.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 7 and all(r["label"] in CLASSES and not r["error"] for r in rows)
    assert all(abs(sum(float(r[c]) for c in CLASSES) - 1) < 1e-4 for r in rows)
    proc = subprocess.run([sys.executable, str(REPO / "eval.py"), f"ckpt_path={best}", "data=tess", f"data.root={originals / 'tess'}",
                           "device=cpu", f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'eval'}"],
                          capture_output=True, text=True, env=_env(root), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["n_evaluated"] == 7 and 0 <= report["eval/uar"] <= 1
    wav = next((originals / "ravdess").rglob("*.wav"))
    timeline = tmp_path / "live.csv"
    proc = subprocess.run([sys.executable, str(REPO / "stream.py"), f"ckpt_path={best}", f"source={wav}", "realtime=false",
                           "vad=energy", f"timeline={timeline}"], capture_output=True, text=True, cwd=tmp_path, env=_env(root),
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with timeline.open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["label"] in CLASSES for r in rows)
