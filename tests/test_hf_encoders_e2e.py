"""A tiny random Whisper end to end on a TESS subset, both ways of putting a head on it:
``model=mlp features=encoder`` (the utterance embedding and a linear probe) and ``model=ssl``
(windows through the embedding cache, SUPERB layer weights); then predict.py, eval.py and
stream.py on the checkpoints, which record the encoder's directory and SHA-256 and find it
again through $SER_ENCODERS when the recorded directory is gone. With the real Whisper base
under $SER_ENCODERS (``python -m ser_lightning.cli.download encoder=whisper_base``), one
more test checks its embedding of a real clip."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import open_dict

pytest.importorskip("transformers")

from ser_lightning.inference.loading import load_predictor  # noqa: E402
from ser_lightning.training.pipeline import train  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.helpers.configs import compose_train  # noqa: E402
from tests.helpers.encoders import tess_subset  # noqa: E402
from tests.helpers.hf_encoders import tiny_whisper  # noqa: E402

CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
FAST = ["trainer=cpu", "logger=none", "callbacks.progress_bar.refresh_rate=0", "data.batch_size=32"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    """Every 8th TESS file (315 recordings, both speakers, random split) as a manifest; a tiny
    Whisper under $SER_ENCODERS/whisper_base; one run of each head."""
    root = tmp_path_factory.mktemp("hfe2e")
    manifest = tess_subset(root, data_dir)
    encoders = root / "encoders"
    tiny_whisper(encoders / "whisper_base")
    data = ["data=manifest", f"data.root={manifest}", "data.split=random"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SER_ENCODERS", str(encoders))
        probe = compose_train([*data, "model=mlp", "features=encoder", "model.hidden=[]", "trainer.max_epochs=30",
                               "model.standardize=corpus", "report_stats=[training,inputset]", *FAST],
                              root / "probe", data_dir, root / "waves")
        with open_dict(probe):
            probe.paths.feature_cache_dir = str(root / "feats")
        train(probe)
        ssl = compose_train([*data, "model=ssl", "model.encoder.name=whisper_base", f"model.encoder.cache_dir={root / 'emb'}",
                             "trainer.max_epochs=20", "model.optimizer.lr=0.01", *FAST], root / "ssl", data_dir, root / "waves")
        train(ssl)
    return root


def _env(root):
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "SER_ENCODERS": str(root / "encoders")}


def test_both_heads_learn_tess_above_chance_and_record_the_encoder(runs):
    for run in ("probe", "ssl"):
        report = json.loads((runs / run / "metrics.json").read_text())
        assert report["test/uar"] > 0.3, (run, report["test/uar"])  # 7 classes: chance 14.3 %
    probe = json.loads((runs / "probe" / "metrics.json").read_text())
    assert set(probe["test_by_stats"]) == {"training", "inputset"} and probe["features"]["n"] == 3 * 64 + 64
    ckpt = torch.load(runs / "probe" / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    enc = ckpt["hyper_parameters"]["features"]["encoder"]
    assert enc["name"] == "whisper_base" and enc["weights"] == str((runs / "encoders" / "whisper_base").resolve())
    assert len(enc["sha256"]) == 64 and ckpt["hyper_parameters"]["standardize"] == "corpus"
    ssl = torch.load(runs / "ssl" / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert ssl["hyper_parameters"]["encoder"]["sha256"] == enc["sha256"]
    assert not any(k.startswith("net.encoder.") for k in ssl["state_dict"])  # the frozen encoder stays in its directory


def test_checkpoints_find_a_moved_encoder_through_ser_encoders(runs, tmp_path, monkeypatch):
    """The recorded directory is gone (another machine): $SER_ENCODERS/<name> holds the same files."""
    moved = tmp_path / "moved"
    shutil.copytree(runs / "encoders", moved)
    monkeypatch.setenv("SER_ENCODERS", str(moved))
    ckpt = torch.load(runs / "probe" / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["features"]["encoder"]["weights"] = str(tmp_path / "gone")
    torch.save(ckpt, tmp_path / "probe.ckpt")
    predictor = load_predictor(tmp_path / "probe.ckpt", device="cpu")
    assert predictor.extractor.encoder.weights_path == (moved / "whisper_base").resolve()
    wave = np.sin(np.arange(16000) / 16000 * 2 * np.pi * 200).astype(np.float32) * 0.3
    assert predictor.predict([(wave, 16000)])[0].error is None


def test_predict_eval_and_stream_commands(runs, originals, tmp_path):
    for run in ("probe", "ssl"):
        best = runs / run / "checkpoints" / "best.ckpt"
        preds = tmp_path / f"{run}.csv"
        proc = subprocess.run([sys.executable, str(REPO / "predict.py"), f"ckpt_path={best}", f"input={originals / 'tess'}",
                               f"output={preds}"], capture_output=True, text=True, cwd=tmp_path, env=_env(runs), timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        with preds.open() as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == 7 and all(r["label"] in CLASSES and not r["error"] for r in rows)
    best = runs / "ssl" / "checkpoints" / "best.ckpt"
    proc = subprocess.run([sys.executable, str(REPO / "eval.py"), f"ckpt_path={best}", "data=tess", f"data.root={originals / 'tess'}",
                           "device=cpu", f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'eval'}"],
                          capture_output=True, text=True, env=_env(runs), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["n_evaluated"] == 7
    wav = next((originals / "ravdess").rglob("*.wav"))
    timeline = tmp_path / "live.csv"
    proc = subprocess.run([sys.executable, str(REPO / "stream.py"), f"ckpt_path={best}", f"source={wav}", "realtime=false",
                           "vad=energy", f"timeline={timeline}"], capture_output=True, text=True, cwd=tmp_path, env=_env(runs),
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with timeline.open() as fh:
        assert all(r["label"] in CLASSES for r in csv.DictReader(fh))


def test_real_whisper_base_when_present(originals):
    """Skipped unless the genuine weights are under $SER_ENCODERS/whisper_base."""
    from ser_lightning.data.audio import load_audio
    from ser_lightning.encoders.embedding import EncoderEmbedding
    from ser_lightning.encoders.hf import home_dir

    if not (home_dir("whisper_base") / "config.json").is_file():
        pytest.skip(f"Whisper base not at {home_dir('whisper_base')}: python -m ser_lightning.cli.download encoder=whisper_base")
    emb = EncoderEmbedding("whisper_base")
    assert (emb.encoder.num_layers, emb.encoder.dim, emb.n_features) == (7, 512, 4096)
    wave = load_audio(next((originals / "tess").rglob("*.wav")), 16000)
    x = emb(wave)
    assert x.shape == (4096,) and np.all(np.isfinite(x)) and x[-512:].min() >= 0  # the last block's std is non-negative


@pytest.fixture
def fake_release(runs, tmp_path, monkeypatch):
    """The probe's checkpoint packaged as a release (scripts/release.py's packaging) in a temporary folder."""
    import importlib.util

    from ser_lightning import released

    spec = importlib.util.spec_from_file_location("release_script", REPO / "scripts" / "release.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    folder = tmp_path / "released"
    folder.mkdir()
    script._package(runs / "probe" / "checkpoints" / "best.ckpt", {"method": "temperature", "temperature": 1.5}, folder / "m.ckpt")
    ckpt = torch.load(folder / "m.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["features"]["encoder"]["weights"] is None and "optimizer_states" not in ckpt
    (folder / "release.json").write_text(json.dumps({
        "name": "tiny-release", "file": "m.ckpt", "licence": "CC BY-NC-SA 4.0", "classes": ckpt["hyper_parameters"]["class_names"],
        "training": {"corpora": ["tess"]}, "encoder": {"name": "whisper_base"}}))
    monkeypatch.setattr(released, "RELEASE_DIR", folder)
    monkeypatch.setattr(released, "RECORD", folder / "release.json")
    released.record.cache_clear()
    yield folder
    released.record.cache_clear()


def test_predict_without_a_checkpoint_uses_the_release_and_names_it(runs, fake_release, originals, monkeypatch, capsys):
    from ser_lightning.cli.predict import run_predict
    from tests.helpers.configs import compose_predict

    monkeypatch.setenv("SER_ENCODERS", str(runs / "encoders"))
    assert run_predict(compose_predict(f"input={originals / 'tess'}")) == 0
    out, err = capsys.readouterr()
    assert "model: tiny-release (licence CC BY-NC-SA 4.0)" in out and "non-commercial research use" in err
    assert sum(line.split()[1] in CLASSES for line in out.splitlines()[2:] if line.strip()) == 7
    # without the encoder: one message with the one set-up command, nothing else
    monkeypatch.setenv("SER_ENCODERS", str(runs / "nowhere"))
    monkeypatch.setenv("HF_HUB_CACHE", str(runs / "no_hub"))
    assert run_predict(compose_predict(f"input={originals / 'tess'}")) == 2
    err = capsys.readouterr().err
    assert "python -m ser_lightning.cli.download encoder=whisper_base" in err and "Traceback" not in err
    assert err.count("error:") == 1
