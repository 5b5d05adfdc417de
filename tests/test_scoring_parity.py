"""One scoring path: a real run trained with train.py, then scored again by eval.py,
predict.py and the exported ONNX model, must give the same answers for the same files.

The run is speaker-normalised (the case where the commands used to disagree: each took
the speaker statistics from somewhere else), scored with the documented defaults
(``scoring=windows``, training statistics)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ser_lightning.evaluation.evaluate import evaluate_checkpoint
from ser_lightning.data.audio import load_audio
from ser_lightning.inference.predictor import Predictor
from ser_lightning.training.pipeline import train
from tests.conftest import REPO
from tests.helpers.configs import compose_train

RUN = ["data=savee", "model=cnn1d", "features=mfcc", "features.normalize=speaker", "logger=csv", "trainer=cpu",
       "trainer.max_epochs=2", "data.batch_size=16", "callbacks.progress_bar.refresh_rate=0"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("parity_run")
    train(compose_train(RUN, out, data_dir, tmp_path_factory.mktemp("cache")))
    return out, json.loads((out / "metrics.json").read_text())


def _test_rows(out):
    with (out / "splits" / "test.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_metrics_json_says_what_it_assumed(run):
    out, metrics = run
    assert metrics["scoring"] == "windows" and metrics["test_stats"] == "training"
    assert set(metrics["test_by_stats"]) == {"transductive", "enrol4", "enrol8", "training"}
    assert metrics["test/uar"] == metrics["test_by_stats"]["training"]["uar"]
    n_test = len(_test_rows(out))
    assert metrics["test_by_stats"]["training"]["n"] == metrics["test_by_stats"]["transductive"]["n"] == n_test
    # enrolment recordings are left out of scoring: k per test speaker
    enrolled = metrics["test_by_stats"]["enrol8"]["enrolled_per_speaker"]
    assert all(k == 8 for k in enrolled.values()) and metrics["test_by_stats"]["enrol8"]["n"] == n_test - 8 * len(enrolled)
    assert (out / metrics["best_checkpoint"]).is_file() and not metrics["best_checkpoint"].startswith("/")
    per_speaker = np.sum([np.asarray(m) for m in metrics["per_speaker_confusion"].values()], axis=0)
    assert per_speaker.tolist() == metrics["confusion_matrix"]


def test_eval_part_test_reproduces_metrics_json(run, data_dir, tmp_path):
    out, metrics = run
    ckpt = out / metrics["best_checkpoint"]
    proc = subprocess.run([sys.executable, str(REPO / "eval.py"), f"ckpt_path={ckpt}", "data=savee", "part=test",
                           f"paths.data_dir={data_dir}", f"hydra.run.dir={tmp_path / 'eval'}", "device=cpu"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["eval/uar"] == pytest.approx(metrics["test/uar"], abs=1e-9)
    assert report["eval/war"] == pytest.approx(metrics["test/war"], abs=1e-9)
    assert report["confusion_matrix"] == metrics["confusion_matrix"]
    for mode, scores in metrics["test_by_stats"].items():
        assert report["eval_by_stats"][mode]["confusion_matrix"] == scores["confusion_matrix"], mode
    # the same label for every file, file by file
    with (tmp_path / "eval" / "predictions.csv").open() as fh:
        eval_labels = {r["path"]: r["predicted"] for r in csv.DictReader(fh)}
    assert set(eval_labels) == {r["path"] for r in _test_rows(out)}
    # predict.py, as docs/PREDICTION.md calls it, over the run's own test files
    listing = tmp_path / "inputs"
    listing.mkdir()
    for r in _test_rows(out):
        (listing / (r["speaker"].replace(":", "_") + "_" + r["path"].rsplit("/", 1)[-1])).symlink_to(r["path"])
    preds = tmp_path / "predict.csv"
    proc = subprocess.run([sys.executable, str(REPO / "predict.py"), f"ckpt_path={ckpt}", f"input={listing}", f"output={preds}",
                           "device=cpu", "progress=false"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with preds.open() as fh:
        predicted = {str((listing / p["path"].rsplit("/", 1)[-1]).resolve()): p["label"] for p in csv.DictReader(fh)}
    assert predicted == {str(Path(p).resolve()): label for p, label in eval_labels.items()}


def test_rescoring_with_adaptation_matches_eval(run, tmp_path):
    """results.py rescore --set adapt=bn adds enrol<k>+bn to a run's metrics.json, scored as
    eval.py adapt=bn scores it (the same enrolment draw, the same adapted model)."""
    import shutil

    from ser_lightning.errors import ConfigError
    from ser_lightning.evaluation.run_scoring import rescore_run

    out, metrics = run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    rescored = rescore_run(copy, overrides=["adapt=bn", "report_stats=[enrol8,training]"])
    assert set(rescored["test_by_stats"]) == {"enrol8", "enrol8+bn", "training"}
    assert rescored["test_by_stats"]["training"]["confusion_matrix"] == metrics["test_by_stats"]["training"]["confusion_matrix"]
    assert "adapt: bn" in (copy / "config.yaml").read_text()
    report = evaluate_checkpoint(copy / metrics["best_checkpoint"], {"corpus": "savee", "root": str(Path(_test_rows(out)[0]["path"]).parents[1]),
                                                                     "split": "speaker", "seed": 42, "cache_dir": None},
                                 part="test", device="cpu", adapt="bn", report_stats=["enrol8"], test_stats="enrol8")
    assert report["eval_by_stats"]["enrol8+bn"]["confusion_matrix"] == rescored["test_by_stats"]["enrol8+bn"]["confusion_matrix"]
    with pytest.raises(ConfigError, match="scoring settings only"):
        rescore_run(copy, overrides=["data.seed=1"])


def test_centre_scoring_agrees_between_eval_and_predict(run, data_dir):
    out, metrics = run
    ckpt = out / metrics["best_checkpoint"]
    data = {"corpus": "savee", "root": str(data_dir / "savee"), "split": "speaker", "seed": 42}  # conf/data/savee.yaml
    report = evaluate_checkpoint(ckpt, data, part="test", scoring="center",
                                 report_stats=["training"], device="cpu")
    rows = _test_rows(out)
    predictions = Predictor.from_checkpoint(ckpt, device="cpu", scoring="center").predict([r["path"] for r in rows])
    names = report["model_classes"]
    cm = np.zeros((len(names), len(names)), dtype=int)
    for r, p in zip(rows, predictions, strict=True):
        assert len(p.windows) == 1  # one centred clip per file
        cm[names.index(r["label"]), names.index(p.label)] += 1
    assert cm.tolist() == report["confusion_matrix"]


def test_exported_onnx_model_matches_the_scoring_path(run, tmp_path):
    pytest.importorskip("onnxruntime")
    from ser_lightning.inference.export import export_checkpoint, run_exported

    out, metrics = run
    ckpt = out / metrics["best_checkpoint"]
    result = export_checkpoint(ckpt, "onnx", tmp_path / "model.onnx")  # speaker-normalised: training statistics built in
    predictor = Predictor.from_checkpoint(ckpt, device="cpu")
    windows = np.concatenate([predictor.windows(load_audio(r["path"], predictor.sample_rate)) for r in _test_rows(out)[:12]])
    np.testing.assert_allclose(run_exported(result.path, "onnx", windows), predictor.probabilities(windows), atol=1e-4)


def test_a_fresh_run_sets_aside_an_old_best_checkpoint_in_its_directory(tmp_path, data_dir):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "best.ckpt").write_bytes(b"an earlier, unfinished run's checkpoint")
    tiny = [o for o in RUN if not o.startswith("trainer.max_epochs")] + ["trainer.max_epochs=1", "+trainer.limit_train_batches=2"]
    train(compose_train(tiny, out, data_dir, tmp_path / "cache"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best_checkpoint"] == "checkpoints/best.ckpt"
    assert Predictor.from_checkpoint(out / metrics["best_checkpoint"], device="cpu").class_names == metrics["class_names"]
    (stale,) = (out / "checkpoints").glob("stale-*/best.ckpt")
    assert stale.read_bytes() == b"an earlier, unfinished run's checkpoint"
