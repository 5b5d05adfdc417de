"""Where results show up (W&B offline run, PNGs, per-class CSV), cross-corpus evaluation
of the checkpoint, and the data-exploration command."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ser_lightning.metrics import per_class_metrics, war_uar
from ser_lightning.errors import UnmappableLabelError
from ser_lightning.evaluation.evaluate import evaluate_checkpoint, map_labels
from ser_lightning.training.pipeline import train
from ser_lightning.training.wandb_setup import read_offline_run, read_offline_table
from tests.conftest import REPO
from tests.helpers.configs import compose_train

SAVEE_CLASSES = ["neutral", "happy", "sad", "angry", "fear", "disgust", "surprise"]


@pytest.fixture(scope="module")
def savee_run(tmp_path_factory, data_dir):
    """Two tiny epochs on SAVEE with the W&B logger (offline)."""
    out = tmp_path_factory.mktemp("savee_run")
    cache = tmp_path_factory.mktemp("cache")
    cfg = compose_train(["data=savee", "model=cnn1d", "logger=wandb", "trainer=cpu", "trainer.max_epochs=2",
                         "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=2",
                         "data.batch_size=8", "callbacks.progress_bar.refresh_rate=0"], out, data_dir, cache)
    train(cfg)
    return out


@pytest.fixture(scope="module")
def mini_ravdess(tmp_path_factory, data_dir):
    """16 RAVDESS files (2 actors x neutral, calm, happy, angry x 2) linked into a folder."""
    root = tmp_path_factory.mktemp("mini") / "ravdess"
    for actor in ("01", "02"):
        (root / f"Actor_{actor}").mkdir(parents=True)
        for emotion in ("01", "02", "03", "05"):
            for src in sorted((data_dir / "ravdess" / f"Actor_{actor}").glob(f"03-01-{emotion}-*"))[:2]:
                (root / f"Actor_{actor}" / src.name).symlink_to(src)
    return root


def test_wandb_offline_run_has_curves_tables_and_media(savee_run):
    run_dir = next((savee_run / "wandb").glob("offline-run-*"))
    run = read_offline_run(run_dir)
    for key in ("train/loss_epoch", "val/loss", "val/war", "val/uar", "val/f1_macro", "lr-AdamW",
                "test/war", "test/uar", "test/f1_macro"):
        assert key in run["summary"], key
    # per epoch, then the best checkpoint's, scored by the one scoring path (the summary's value)
    assert sum("val/uar" in row for row in run["history"]) == 3
    assert run["summary"]["val/uar"] == pytest.approx(json.loads((savee_run / "metrics.json").read_text())["val/uar"])
    assert run["config"]["data"]["corpus"] == "savee"  # the resolved config
    examples = read_offline_table(run_dir, "val/examples", run)
    assert sum("val/examples/path" in row for row in run["history"]) == 2  # a table per epoch
    assert examples["columns"] == ["epoch", "clip", "true", "predicted", "probability", "audio", "features"]
    assert len(examples["data"]) == 4 and len({row[2] for row in examples["data"]}) == 4  # 4 clips, 4 classes
    for row in examples["data"]:
        assert row[2] in SAVEE_CLASSES and row[3] in SAVEE_CLASSES and 0 <= row[4] <= 1
        assert row[5]["_type"] == "audio-file" and row[5]["path"].endswith(".wav")
        assert Path(examples["files"][row[5]["path"]]).stat().st_size > 40000  # 3 s at 16 kHz, 16 bit
        assert row[6]["_type"] == "image-file" and Path(examples["files"][row[6]["path"]]).is_file()
    per_class = read_offline_table(run_dir, "test/per_class", run)
    assert [r[0] for r in per_class["data"]] == SAVEE_CLASSES and "recall" in per_class["columns"]
    confusion = read_offline_table(run_dir, "test/confusion_matrix_table", run)
    report = json.loads((savee_run / "metrics.json").read_text())
    counts = {(r[0], r[1]): r[2] for r in confusion["data"]}
    for i, true in enumerate(SAVEE_CLASSES):
        for j, pred in enumerate(SAVEE_CLASSES):
            assert counts.get((true, pred), 0) == report["confusion_matrix"][i][j]


def test_run_directory_has_png_curves_and_per_class_csv(savee_run):
    assert (savee_run / "training_curves.png").stat().st_size > 5000
    with (savee_run / "history.csv").open() as fh:
        history = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in history] == [0, 1]
    assert all(float(r["lr"]) > 0 and 0 <= float(r["val/uar"]) <= 1 and float(r["train/loss_epoch"]) > 0 for r in history)
    report = json.loads((savee_run / "metrics.json").read_text())
    with (savee_run / "per_class_metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    expected = per_class_metrics(np.array(report["confusion_matrix"]), report["class_names"])
    assert [r["class"] for r in rows] == report["class_names"]
    assert [int(r["support"]) for r in rows] == [e["support"] for e in expected]
    recalls = [e["recall"] for e in expected if e["recall"] is not None]
    assert np.mean(recalls) == pytest.approx(report["test/uar"], abs=1e-5)  # UAR = mean per-class recall


def test_per_class_metrics_and_war_uar_by_hand():
    cm = np.array([[3, 1, 0], [0, 0, 0], [2, 0, 2]])  # class 1 has no true example
    rows = per_class_metrics(cm, ["a", "b", "c"])
    assert rows[0] == {"class": "a", "precision": 0.6, "recall": 0.75, "f1": pytest.approx(2 * 0.6 * 0.75 / 1.35),
                       "support": 4, "predicted": 5}
    assert rows[1]["recall"] is None and rows[1]["precision"] == 0.0
    assert war_uar(cm) == (pytest.approx(5 / 8), pytest.approx((0.75 + 0.5) / 2))


def test_label_mapping_policies():
    counts = {"neutral": 4, "calm": 4, "happy": 4, "boredom": 2}
    model = ["neutral", "happy", "sad"]
    mapped = map_labels(counts, model, "map", {"calm": "neutral"})
    assert mapped.mapping == {"neutral": "neutral", "calm": "neutral", "happy": "happy"}
    assert mapped.dropped == {"boredom": 2} and mapped.absent == ["sad"]
    assert "mapped calm -> neutral" in mapped.describe() and any("dropped boredom: 2" in x for x in mapped.describe())
    dropped = map_labels(counts, model, "drop", {"calm": "neutral"})
    assert dropped.dropped == {"calm": 4, "boredom": 2}
    with pytest.raises(UnmappableLabelError, match="boredom"):
        map_labels(counts, model, "error")
    with pytest.raises(ValueError, match="label_map.calm=relaxed"):
        map_labels(counts, model, "map", {"calm": "relaxed"})
    with pytest.raises(UnmappableLabelError, match="no target label"):
        map_labels({"calm": 3}, model, "drop")


def test_checkpoint_on_another_corpus_maps_or_drops_calm(savee_run, mini_ravdess, tmp_path):
    ckpt = savee_run / "checkpoints" / "best.ckpt"
    data = {"corpus": "ravdess", "root": str(mini_ravdess), "cache_dir": None}
    mapped = evaluate_checkpoint(ckpt, data, unknown_labels="map", label_map={"calm": "neutral"}, device="cpu",
                                 output_dir=tmp_path / "map")
    assert mapped["mapped"] == {"calm": "neutral"} and mapped["dropped"] == {}
    assert mapped["n_evaluated"] == 16 and mapped["per_class"][0]["support"] == 8  # 4 neutral + 4 calm
    assert set(mapped["absent"]) == {"sad", "fear", "disgust", "surprise"}
    cm = np.array(mapped["confusion_matrix"])
    assert mapped["eval/war"] == pytest.approx(np.trace(cm) / 16)
    dropped = evaluate_checkpoint(ckpt, data, unknown_labels="drop", device="cpu")
    assert dropped["dropped"] == {"calm": 4} and dropped["n_evaluated"] == 12 and dropped["per_class"][0]["support"] == 4
    with (tmp_path / "map" / "predictions.csv").open() as fh:
        preds = list(csv.DictReader(fh))
    assert len(preds) == 16 and all(p["predicted"] in SAVEE_CLASSES for p in preds)
    assert {p["true"] for p in preds if "-02-" in Path(p["path"]).name[5:9]} == {"neutral"}  # calm scored as neutral


def test_classes_target_restricts_the_argmax_to_the_target_label_set(savee_run, mini_ravdess, tmp_path):
    """classes=target (eval.py's default): a SAVEE model on RAVDESS neutral/calm/happy/angry
    can only answer those; the unrestricted score is reported beside it, and predict.py
    with the same classes=[...] gives the same labels (one scoring path)."""
    from ser_lightning.inference.predictor import Predictor

    ckpt = savee_run / "checkpoints" / "best.ckpt"
    data = {"corpus": "ravdess", "root": str(mini_ravdess), "cache_dir": None}
    target = evaluate_checkpoint(ckpt, data, label_map={"calm": "neutral"}, device="cpu", output_dir=tmp_path / "target")
    unrestricted = evaluate_checkpoint(ckpt, data, label_map={"calm": "neutral"}, device="cpu", classes="all")
    assert target["target_classes"] == ["neutral", "happy", "angry"]
    cm, cm_all = np.array(target["confusion_matrix"]), np.array(unrestricted["confusion_matrix"])
    absent = [SAVEE_CLASSES.index(c) for c in target["absent"]]
    assert cm[:, absent].sum() == 0 and cm.sum() == cm_all.sum() == 16
    # the arg-max over a subset that holds the true class keeps every right answer
    assert target["eval/war"] >= unrestricted["eval/war"]
    assert np.all(np.diag(cm) >= np.diag(cm_all))
    for report in (target, unrestricted):
        assert report["eval_by_classes"]["target"]["uar"] == pytest.approx(target["eval/uar"])
        assert report["eval_by_classes"]["all"]["uar"] == pytest.approx(unrestricted["eval/uar"])
    with (tmp_path / "target" / "predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    predictor = Predictor.from_checkpoint(ckpt, device="cpu", classes=target["target_classes"])
    labels = {Path(p.source).name: p.label for p in predictor.predict([r["path"] for r in rows])}
    assert labels == {Path(r["path"]).name: r["predicted"] for r in rows}
    with pytest.raises(ValueError, match="no class"):
        Predictor.from_checkpoint(ckpt, device="cpu", classes=["neutral", "calm"])
    with pytest.raises(ValueError, match="classes="):
        evaluate_checkpoint(ckpt, data, device="cpu", classes="common")


def test_eval_cli_reports_unmapped_classes(savee_run, mini_ravdess, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, str(REPO / "eval.py"), f"ckpt_path={savee_run / 'checkpoints' / 'best.ckpt'}",
                           "data=ravdess", f"data.root={mini_ravdess}", "unknown_labels=drop", "device=cpu",
                           f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'eval'}"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "dropped   calm: 4 files" in proc.stdout and "UAR (macro recall)" in proc.stdout
    assert "classes=target" in proc.stdout and "over all 7 model classes" in proc.stdout
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["n_evaluated"] == 12 and 0 <= report["eval/uar"] <= 1
    bad = subprocess.run([sys.executable, str(REPO / "eval.py"), f"ckpt_path={tmp_path / 'none.ckpt'}", "data=ravdess",
                          f"data.root={mini_ravdess}", f"hydra.run.dir={tmp_path / 'eval2'}"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr


def test_explore_command_writes_pngs_per_emotion(mini_ravdess, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = tmp_path / "explore"
    proc = subprocess.run([sys.executable, "-m", "ser_lightning.cli.explore", "data=ravdess", f"data.root={mini_ravdess}",
                           f"out={out}", f"paths.cache_dir={tmp_path / 'cache'}"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    emotions = ["neutral", "calm", "happy", "angry"]
    expected = {"class_counts.png", "durations.png"} | {f"{k}_{e}.png" for e in emotions for k in ("waveform", "logmel")}
    assert expected <= {p.name for p in out.glob("*.png")}
    assert all((out / name).stat().st_size > 5000 for name in expected)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["classes"] == {e: 4 for e in emotions} and summary["genders"] == {"male": 8, "female": 8}
    assert 2.5 < summary["seconds"]["median"] < 5.0  # RAVDESS sentences last about 3-4 s
