"""End to end: compose the real Hydra config, train a few batches on the shared corpora,
predict with the saved checkpoint through predict.py."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ser_lightning.training.pipeline import train
from ser_lightning.training.wandb_setup import read_offline_run
from tests.conftest import REPO, write_tone
from tests.helpers.configs import FAST, compose_train


@pytest.fixture(scope="module")
def tess_run(tmp_path_factory, data_dir, cache_dir):
    out = tmp_path_factory.mktemp("tess_run")
    cfg = compose_train(["data=tess", "model=cnn2d", "logger=wandb", *FAST], out, data_dir, cache_dir)
    metrics = train(cfg)
    return out, metrics


def test_train_writes_the_run_directory(tess_run):
    out, metrics = tess_run
    assert (out / "checkpoints" / "best.ckpt").is_file() and (out / "checkpoints" / "last.ckpt").is_file()
    assert (out / "config.yaml").is_file() and (out / "confusion_matrix.png").stat().st_size > 1000
    report = json.loads((out / "metrics.json").read_text())
    for key in ("test/war", "test/uar", "test/f1_macro"):
        assert 0.0 <= report[key] <= 1.0
        assert report[key] == pytest.approx(metrics[key])
    assert report["class_names"] == ["neutral", "happy", "sad", "angry", "fear", "disgust", "surprise"]
    parts = {}
    for part in ("train", "val", "test"):
        with (out / "splits" / f"{part}.csv").open() as fh:
            parts[part] = {r["path"] for r in csv.DictReader(fh)}
    assert len(parts["train"]) + len(parts["val"]) + len(parts["test"]) == 2520
    assert not parts["train"] & parts["test"] and not parts["val"] & parts["test"]
    cm = report["confusion_matrix"]
    assert len(cm) == 7 and sum(map(sum, cm)) == len(parts["test"])  # the scorer scores the whole test part


def test_wandb_offline_run_holds_the_metrics(tess_run):
    out, _ = tess_run
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    run = read_offline_run(runs[0])
    report = json.loads((out / "metrics.json").read_text())
    for key in ("val/uar", "val/war", "train/loss_epoch", "test/uar", "test/war", "test/f1_macro"):
        assert key in run["summary"], sorted(run["summary"])
    assert run["summary"]["test/uar"] == pytest.approx(report["test/uar"])
    assert any("val/uar" in row for row in run["history"])
    assert run["config"]["model"]["backbone"]["name"] == "cnn2d" and run["config"]["data"]["corpus"] == "tess"


def test_predict_cli_on_original_files(tess_run, originals, tmp_path):
    out, _ = tess_run
    csv_path = tmp_path / "preds.csv"
    proc = subprocess.run(
        [sys.executable, str(REPO / "predict.py"), f"ckpt_path={out / 'checkpoints' / 'best.ckpt'}", f"input={originals}", f"output={csv_path}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    with csv_path.open() as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        header = reader.fieldnames
    classes = ["neutral", "happy", "sad", "angry", "fear", "disgust", "surprise"]
    assert header[:3] == ["path", "label", "confidence"] and header[3:10] == classes
    assert len(rows) == 15
    for r in rows:
        assert r["label"] in classes
        probs = [float(r[c]) for c in classes]
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert float(r["confidence"]) == pytest.approx(max(probs))
    assert "YAF_germ_angry.wav" in proc.stdout  # the AIFF-in-.wav file is predicted too


def test_predict_reports_bad_file_and_goes_on(tess_run, tmp_path):
    out, _ = tess_run
    inputs = tmp_path / "in"
    write_tone(inputs / "good.wav", seconds=2.0, sr=44100, channels=2)
    (inputs / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt ")
    json_path = tmp_path / "preds.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "predict.py"), f"ckpt_path={out / 'checkpoints' / 'best.ckpt'}", f"input={inputs}", f"output={json_path}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 1
    rows = {Path(r["path"]).name: r for r in json.loads(json_path.read_text())}
    assert rows["broken.wav"]["label"] is None and "cannot decode" in rows["broken.wav"]["error"]
    assert rows["good.wav"]["error"] is None and rows["good.wav"]["label"]


def test_ravdess_cnn1d_mfcc_speaker_split(tmp_path, data_dir, cache_dir):
    cfg = compose_train(["data=ravdess", "model=cnn1d", "features=mfcc", "logger=csv", *FAST], tmp_path, data_dir, cache_dir)
    metrics = train(cfg)
    assert 0.0 <= metrics["test/uar"] <= 1.0
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["split"].startswith("speaker")
    speakers = {}
    for part in ("train", "val", "test"):
        with (tmp_path / "splits" / f"{part}.csv").open() as fh:
            speakers[part] = {r["speaker"] for r in csv.DictReader(fh)}
    assert not speakers["train"] & speakers["test"] and not speakers["val"] & speakers["test"]
    assert (tmp_path / "csv").is_dir()


def test_train_cli_missing_data_root_is_one_clear_error(tmp_path):
    env = {**os.environ, "SER_DATA_DIR": str(tmp_path / "no_such_root")}
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "logger=none", f"hydra.run.dir={tmp_path / 'run'}"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 2
    text = proc.stdout + proc.stderr
    assert str(tmp_path / "no_such_root" / "tess") in text and "Expected layout" in text
    assert "Traceback" not in text


@pytest.mark.parametrize("corpus,protocol", [("savee", "speaker"), ("crema_d", "random")])
def test_other_corpora_train(corpus, protocol, tmp_path, data_dir, cache_dir):
    cfg = compose_train([f"data={corpus}", "logger=none", *FAST], tmp_path, data_dir, cache_dir)
    metrics = train(cfg)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["split"].startswith(protocol)  # crema_d sample: 2 actors -> auto falls back to random
    assert 0.0 <= metrics["test/war"] <= 1.0 and (tmp_path / "checkpoints" / "best.ckpt").is_file()
