"""Ensembles of trained runs (ser_lightning.evaluation.ensemble, ``results.py ensemble``): an ensemble
of one run reproduces the run's own validation and test scores, a larger one averages its
members' probabilities, and runs of different splits are refused."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from ser_lightning.errors import EnsembleError
from ser_lightning.evaluation.ensemble import ensemble_metrics, evaluate_ensemble
from ser_lightning.errors import CheckpointError
from ser_lightning.inference.predictor import Predictor
from ser_lightning.training.pipeline import train
from ser_lightning.evaluation import results as results_module
from tests.conftest import REPO
from tests.helpers.configs import compose_train

# Speaker-normalised MFCC, so members are scored with their speakers' statistics, as in training.
TINY = ["data=savee", "model=cnn1d", "features=mfcc", "features.normalize=speaker", "logger=csv", "trainer=cpu",
        "trainer.max_epochs=2", "+trainer.limit_train_batches=2", "data.batch_size=16",
        "callbacks.progress_bar.refresh_rate=0", "data.seed=3"]


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory, data_dir):
    """The same tiny recipe trained with model seeds 0 and 1 on one split (data.seed=3)."""
    cache = tmp_path_factory.mktemp("cache")
    runs = []
    for seed in (0, 1):
        out = tmp_path_factory.mktemp(f"seed{seed}")
        train(compose_train([*TINY, f"seed={seed}"], out, data_dir, cache))
        runs.append(out)
    return runs


def test_an_ensemble_of_one_run_reproduces_its_validation_and_test_scores(two_seeds):
    run = two_seeds[0]
    recorded = json.loads((run / "metrics.json").read_text())
    metrics = ensemble_metrics(evaluate_ensemble([run]), recorded["class_names"])
    assert metrics["val/uar"] == pytest.approx(recorded["val/uar"], abs=1e-6)
    assert metrics["test/uar"] == pytest.approx(recorded["test/uar"], abs=1e-6)
    assert metrics["test/war"] == pytest.approx(recorded["test/war"], abs=1e-6)
    assert metrics["confusion_matrix"] == recorded["confusion_matrix"]
    assert metrics["test_stats"] == recorded["test_stats"]
    for mode, scores in recorded["test_by_stats"].items():
        assert metrics["test_by_stats"][mode]["confusion_matrix"] == scores["confusion_matrix"], mode


def test_an_ensemble_averages_its_members_probabilities(two_seeds):
    alone = [evaluate_ensemble([run]) for run in two_seeds]
    both = evaluate_ensemble(two_seeds)
    for part in ("val", "test"):
        assert not np.allclose(alone[0][part].uncalibrated, alone[1][part].uncalibrated)  # the seeds differ
        # before the ensemble's own temperature: the mean of the members' probabilities
        np.testing.assert_allclose(both[part].uncalibrated, (alone[0][part].uncalibrated + alone[1][part].uncalibrated) / 2, atol=1e-6)
        np.testing.assert_allclose(both[part].probabilities.sum(axis=1), 1.0, atol=1e-5)
        assert both[part].calibration["temperature"] not in (alone[0][part].calibration["temperature"], 1.0)  # fitted on the ensemble
        assert both[part].member_uar == [alone[0][part].member_uar[0], alone[1][part].member_uar[0]]
        assert both[part].paths == alone[0][part].paths and len(both[part].paths) > 0


def test_an_ensemble_of_one_adapted_run_reproduces_its_adapted_scores(two_seeds, tmp_path):
    from ser_lightning.evaluation.run_scoring import rescore_run

    run = tmp_path / "adapted"
    shutil.copytree(two_seeds[0], run)
    recorded = rescore_run(run, ["adapt=bn", "report_stats=[enrol2,training]"])
    assert "enrol2+bn" in recorded["test_by_stats"]
    metrics = ensemble_metrics(evaluate_ensemble([run]), recorded["class_names"])
    for mode in ("enrol2", "enrol2+bn", "training"):
        assert metrics["test_by_stats"][mode]["confusion_matrix"] == recorded["test_by_stats"][mode]["confusion_matrix"], mode
    assert metrics["test/uar"] == pytest.approx(recorded["test/uar"], abs=1e-6)


def test_runs_of_different_splits_or_without_a_checkpoint_are_refused(two_seeds, tmp_path):
    other_split = tmp_path / "other_split"
    shutil.copytree(two_seeds[1], other_split)
    test_csv = other_split / "splits" / "test.csv"
    lines = test_csv.read_text().splitlines()
    test_csv.write_text("\n".join(lines[:-5]) + "\n")  # a split rewritten after training: not the checkpoint's
    with pytest.raises(EnsembleError, match="other utterances than the first member.*fingerprint"):
        evaluate_ensemble([two_seeds[0], other_split], parts=("test",))
    no_ckpt = tmp_path / "no_ckpt"
    shutil.copytree(two_seeds[1], no_ckpt)
    (no_ckpt / "checkpoints" / "best.ckpt").unlink()
    with pytest.raises(EnsembleError, match="does not exist"):
        evaluate_ensemble([two_seeds[0], no_ckpt])
    with pytest.raises(EnsembleError, match="unknown part"):
        evaluate_ensemble([two_seeds[0]], parts=("train",))


def test_results_ensemble_writes_a_recipe_that_validation_can_choose(two_seeds, tmp_path, monkeypatch):
    results = results_module
    monkeypatch.setattr(results, "REPO", tmp_path)
    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path / "outputs" / "results")
    monkeypatch.setattr(results, "RESULTS_MD", tmp_path / "RESULTS.md")
    monkeypatch.setattr(results, "RECORDS_DIR", tmp_path / "records")
    job = next(iter(results.PROTOCOLS["savee_loso"].jobs))
    for k, run in enumerate(two_seeds):
        base = tmp_path / "outputs" / "results" / "savee_loso" / f"seed{k}"
        base.mkdir(parents=True)
        (base / "recipe.json").write_text(json.dumps({"model": "cnn1d", "features": "mfcc", "hardware": {"cpu": "Test CPU"},
                                                      "command": f"python scripts/results.py run savee_loso --tag seed{k}"}))
        shutil.copytree(run, base / job)
    args = argparse.Namespace(protocol="savee_loso", members="seed0,seed1", tag="seeds2", jobs=job, device="cpu", data_root=None)
    assert results.ensemble(args) == 0
    metrics = json.loads((tmp_path / "outputs" / "results" / "savee_loso" / "seeds2" / job / "metrics.json").read_text())
    expected = ensemble_metrics(evaluate_ensemble(two_seeds), metrics["class_names"])
    assert metrics["best_val_uar"] == pytest.approx(expected["val/uar"]) and metrics["test/uar"] == pytest.approx(expected["test/uar"])
    assert len(metrics["val/member_uar"]) == 2
    record = json.loads((tmp_path / "records" / "savee_loso" / "seeds2" / f"{job}.json").read_text())
    assert record["recipe"]["model"] == "ensemble of 2 cnn1d" and record["recipe"]["members"] == ["seed0", "seed1"]
    # a job whose members did not all finish is reported, not scored
    args.jobs = ",".join(results.PROTOCOLS["savee_loso"].jobs)
    assert results.ensemble(args) == 1
    with pytest.raises(SystemExit, match="at least 2"):
        results.ensemble(argparse.Namespace(**{**vars(args), "members": "seed0"}))


def test_predictor_of_several_checkpoints_predicts_their_mean_probabilities(two_seeds, data_dir, tmp_path):
    clip = sorted((data_dir / "savee").rglob("*.flac"))[0]
    ckpts = [run / "checkpoints" / "best.ckpt" for run in two_seeds]
    alone = [Predictor.from_checkpoint(c, device="cpu").predict([clip])[0] for c in ckpts]
    both = Predictor.from_checkpoint(ckpts, device="cpu").predict([clip])[0]
    assert alone[0].probabilities != alone[1].probabilities
    for name, p in both.probabilities.items():
        assert p == pytest.approx((alone[0].probabilities[name] + alone[1].probabilities[name]) / 2, abs=1e-5)
    # members of another recipe are refused, naming what differs
    other = torch.load(ckpts[1], weights_only=True)
    other["hyper_parameters"]["clip_seconds"] = 2.0
    torch.save(other, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="differs .* in clip_seconds"):
        Predictor.from_checkpoint([ckpts[0], tmp_path / "other.ckpt"])
    with pytest.raises(CheckpointError, match="empty list"):
        Predictor.from_checkpoint([])


def test_predict_cli_takes_a_list_of_checkpoints(two_seeds, data_dir, tmp_path):
    clip = sorted((data_dir / "savee").rglob("*.flac"))[0]
    ckpts = ",".join(str(run / "checkpoints" / "best.ckpt") for run in two_seeds)
    out = tmp_path / "preds.json"
    proc = subprocess.run([sys.executable, str(REPO / "predict.py"), f"ckpt_path=[{ckpts}]", f"input={clip}", f"output={out}",
                           "progress=false"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(out.read_text())[0]
    expected = Predictor.from_checkpoint([run / "checkpoints" / "best.ckpt" for run in two_seeds], device="cpu").predict([clip])[0]
    assert row["label"] == expected.label and row["confidence"] == pytest.approx(expected.confidence, abs=1e-5)
    proc = subprocess.run([sys.executable, str(REPO / "export.py"), f"ckpt_path=[{ckpts}]"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "one checkpoint" in proc.stderr
