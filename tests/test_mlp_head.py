"""The linear / MLP head on openSMILE functionals trained by the Lightning loop
(``train.py model=mlp``) end to end on a tiny synthetic corpus: run directory, selection on
validation, checkpoint round-trip, predict.py / eval.py / ensembles on its checkpoint."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("opensmile")

from ser_lightning.errors import CheckpointError, ConfigError  # noqa: E402
from tests.helpers.expert import assert_fusion_is_member_mean, confusion_on_test_part, tiny_corpus  # noqa: E402

FAST = ["trainer=cpu", "trainer.max_epochs=12", "callbacks.progress_bar.refresh_rate=0", "data.batch_size=8", "logger=csv"]


def _compose(tmp_path: Path, manifest: Path, out: str, *extra: str):
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from tests.conftest import REPO

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["model=mlp", "features=egemaps", "data=manifest", f"data.root={manifest}",
                                          "data.split=cross", "data.test_speakers=[s3]", "data.val_fraction=0.25", *FAST, *extra])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / out)
        cfg.paths.cache_dir = str(tmp_path / "waves")
        cfg.paths.feature_cache_dir = str(tmp_path / "feats")
    return cfg


@pytest.fixture(scope="module")
def mlp_runs(tmp_path_factory):
    """Two runs on the tiny corpus (same split): an MLP with the training part's z-score, and
    the linear head with per-speaker standardisation."""
    from ser_lightning.training.pipeline import train

    tmp = tmp_path_factory.mktemp("mlp")
    manifest = tiny_corpus(tmp)
    train(_compose(tmp, manifest, "run"))
    train(_compose(tmp, manifest, "linear", "model.hidden=[]", "model.standardize=speaker"))
    return tmp


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_mlp_run_writes_what_every_recipe_writes_and_selects_on_validation(mlp_runs):
    run = mlp_runs / "run"
    m = _metrics(run)
    for f in ("config.yaml", "splits/train.csv", "splits/test.csv", "splits/split.json", "skipped_files.csv", "history.csv",
              "per_class_metrics.csv", "confusion_matrix.png", "reliability_diagram.png", "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        assert (run / f).is_file(), f
    assert m["scoring"] == "functionals" and m["test_stats"] == "utterance" and set(m["test_by_stats"]) == {"utterance"}
    assert m["best_checkpoint"] == "checkpoints/best.ckpt" and m["n_test"] == 18 and sum(map(sum, m["confusion_matrix"])) == 18
    assert 1 <= m["epochs"] <= 12 and m["mlp"]["hidden"] == [256] and m["features"]["n"] == 88
    # the checkpoint is the best validation UAR of the loop (history), and the scorer's validation UAR is the same figure
    with (run / "history.csv").open() as fh:
        val = [float(r["val/uar"]) for r in csv.DictReader(fh)]
    assert m["best_val_uar"] == pytest.approx(max(val), abs=1e-6)
    assert m["val/uar"] == pytest.approx(m["best_val_uar"], abs=1e-6)
    assert m["test/uar"] > 0.6  # pitch and loudness separate these classes for the unseen speaker s3
    # the training part's statistics travel in the checkpoint, and the split matches the SVM's way of splitting
    ckpt = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["features"]["level"] == "functionals" and ckpt["state_dict"]["training_mean"].shape == (88,)
    assert ckpt["hyper_parameters"]["split_fingerprint"] == m["split_fingerprint"]


def test_linear_head_with_per_speaker_statistics_scores_every_mode(mlp_runs):
    m = _metrics(mlp_runs / "linear")
    assert m["parameters"] == 88 * 3 + 3  # softmax regression: one weight per feature and class, one bias per class
    assert set(m["test_by_stats"]) == {"transductive", "enrol4", "enrol8", "training"}
    assert m["test_by_stats"]["enrol8"]["n"] == 18 - 8  # enrolment files left out of scoring
    assert m["val_by_stats"]["transductive"]["uar"] == pytest.approx(m["best_val_uar"], abs=1e-6)


def test_checkpoint_round_trip_predict_and_eval_agree(mlp_runs, tmp_path):
    """predict.py's loader and eval.py's scorer on best.ckpt, given the test files by path
    (decoded and extracted again): the run's confusion matrix and the same probabilities."""
    from omegaconf import OmegaConf

    from ser_lightning.cli.predict import predictor_from_config
    from ser_lightning.evaluation.evaluate import evaluate_checkpoint
    from ser_lightning.inference.functionals import FunctionalsPredictor
    from ser_lightning.inference.loading import load_predictor
    from tests.helpers.configs import compose_predict

    run = mlp_runs / "run"
    m = _metrics(run)
    best = run / "checkpoints" / "best.ckpt"
    predictor = predictor_from_config(compose_predict(f"ckpt_path={best}", "input=unused.wav"))
    assert isinstance(predictor, FunctionalsPredictor) and predictor.class_names == m["class_names"]
    assert predictor.temperature == load_predictor(best).temperature  # the calibration stored after training
    confusion, predictions = confusion_on_test_part(predictor, run, m["class_names"])
    assert confusion == m["confusion_matrix"]

    data_cfg = OmegaConf.to_container(OmegaConf.load(run / "config.yaml").data, resolve=True)
    report = evaluate_checkpoint(best, data_cfg, part="test", device="cpu", output_dir=tmp_path / "eval")
    assert report["eval/uar"] == pytest.approx(m["test/uar"]) and report["confusion_matrix"] == m["confusion_matrix"]
    with (tmp_path / "eval" / "predictions.csv").open() as fh:
        evaluated = {r["path"]: float(r["probability"]) for r in csv.DictReader(fh)}
    for path, p in predictions.items():
        assert evaluated[path] == pytest.approx(p.confidence, abs=1e-6)
    with pytest.raises(ConfigError, match="adapt=bn"):
        predictor.adapted([])


def test_fusion_of_two_functionals_heads_through_the_ensemble_path(mlp_runs):
    from ser_lightning.evaluation.ensemble import evaluate_ensemble

    runs = [mlp_runs / "run", mlp_runs / "linear"]
    scores = evaluate_ensemble(runs, parts=("val", "test"))
    assert scores["test"].probabilities.shape == (18, 3)
    assert_fusion_is_member_mean([r / "checkpoints" / "best.ckpt" for r in runs], scores["test"].paths[0])


def test_bad_combinations_are_one_clear_error(tmp_path):
    from ser_lightning.training.pipeline import train

    manifest = tiny_corpus(tmp_path)
    cfg = _compose(tmp_path, manifest, "bad", "features=logmel", "model.hidden=[0]", "model.dropout=1.5", "data.trim=vad")
    with pytest.raises(ConfigError) as err:
        train(cfg)
    text = str(err.value)
    assert all(k in text for k in ("features=logmel", "model.hidden", "model.dropout", "data.trim")), text
    assert not (tmp_path / "bad" / "checkpoints").exists()  # refused before any data was read or model trained


def test_damaged_mlp_checkpoint_is_a_checkpoint_error(mlp_runs, tmp_path):
    from ser_lightning.inference.functionals import FunctionalsPredictor

    ckpt = torch.load(mlp_runs / "run" / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["hidden"] = [64]  # weights of a [256] head under a [64] description
    bad = tmp_path / "bad.ckpt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError, match="MLP head"):
        FunctionalsPredictor.from_checkpoint(bad)
