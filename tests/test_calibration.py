"""Calibration (temperature scaling, ECE / NLL / Brier, reliability diagram, risk-coverage)
and abstention (``min_confidence``: the ``uncertain`` label, in the API and predict.py)."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import multiclass_calibration_error

from ser_lightning.inference.abstention import UNCERTAIN, abstain, abstention_summary, apply_min_confidence, check_min_confidence
from ser_lightning.evaluation.calibration import calibration_metrics, ece_from_bins, fit_calibration, fit_temperature, nll, reliability_diagram, risk_coverage, risk_coverage_plot
from ser_lightning.inference.calibration import TemperatureScaled, apply_temperature, checkpoint_temperature, softmax_probabilities
from ser_lightning.inference.outputs import Prediction, SILENCE, WindowPrediction
from tests.helpers.checkpoints import CLASSES
from tests.helpers.checkpoints import run_predict
from tests.helpers.configs import compose_predict


def synthetic_scores(n: int = 600, n_classes: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of a model that is calibrated at T = 1 by construction: the label is *drawn*
    from ``softmax(z)``, so ``z`` are the true log-odds."""
    g = torch.Generator().manual_seed(seed)
    z = 1.5 * torch.randn(n, n_classes, generator=g)
    y = torch.multinomial(torch.softmax(z, dim=1), 1, generator=g)[:, 0]
    return z, y


# --- temperature scaling --------------------------------------------------------------


def test_over_confident_logits_get_a_temperature_above_one_and_under_confident_below():
    z, y = synthetic_scores()
    assert fit_temperature(z, y) == pytest.approx(1.0, abs=0.15)  # calibrated by construction
    t_over = fit_temperature(4 * z, y)  # the same evidence with logits 4x too large
    t_under = fit_temperature(z / 3, y)
    assert t_over > 1 and t_under < 1
    # scaling the logits by k scales the fitted temperature by k (the NLL sees only z / T)
    assert t_over / 4 == pytest.approx(fit_temperature(z, y), rel=1e-4)
    assert t_under * 3 == pytest.approx(fit_temperature(z, y), rel=1e-4)


def test_fitting_lowers_the_nll_to_its_minimum_and_keeps_the_arg_max():
    z, y = synthetic_scores(seed=1)
    logits = 3 * z
    t = fit_temperature(logits, y)
    assert nll(logits, y, t) < nll(logits, y) - 0.1
    # t is the minimum: a step either way in log T raises the NLL
    assert nll(logits, y, t) < min(nll(logits, y, t * 1.05), nll(logits, y, t / 1.05))
    assert torch.equal(apply_temperature(logits, t).argmax(1), logits.argmax(1))
    record = fit_calibration(logits, y)
    assert record == {"method": "temperature", "temperature": t, "fitted_on": "val", "n": len(y),
                      "nll_before": pytest.approx(nll(logits, y)), "nll_after": pytest.approx(nll(logits, y, t))}
    assert fit_calibration(logits, y, method="none")["temperature"] == 1.0


def test_temperature_on_log_probabilities_equals_temperature_on_logits():
    # why an ensemble (ProbabilityAverage outputs log mean probabilities) is calibrated
    # with one temperature on its output
    z, y = synthetic_scores(n=200, seed=2)
    log_p = torch.log_softmax(3 * z, dim=1)
    assert fit_temperature(log_p, y) == pytest.approx(fit_temperature(3 * z, y), rel=1e-6)
    torch.testing.assert_close(softmax_probabilities(log_p, 2.0), softmax_probabilities(3 * z, 2.0))


def test_small_and_degenerate_sets_give_a_bounded_temperature_and_bad_input_a_clear_error(caplog):
    one = torch.tensor([[2.0, 0.5, 0.0]])
    assert fit_temperature(one, torch.tensor([1])) > 1  # a single confident error: soften
    all_right = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    assert fit_temperature(all_right, torch.tensor([0, 1])) == pytest.approx(0.05)  # the lower bound, with a warning
    assert "bound" in caplog.text
    with pytest.raises(ValueError, match="empty"):
        fit_temperature(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[n\] = \[2\]"):
        fit_temperature(all_right, torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="integer"):
        fit_temperature(all_right, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit_temperature(all_right, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit_temperature(torch.tensor([[0.0, -math.inf]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="n_classes"):
        fit_temperature(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="positive"):
        apply_temperature(one, 0.0)
    with pytest.raises(ValueError, match="unknown"):
        fit_calibration(all_right, torch.tensor([0, 1]), method="platt")


def test_temperature_scaled_model_and_checkpoint_convention():
    backbone = torch.nn.Linear(5, 3)
    scaled = TemperatureScaled(backbone, 2.5)
    x = torch.randn(4, 5)
    torch.testing.assert_close(scaled(x), backbone(x) / 2.5)
    assert "temperature" in scaled.state_dict()
    assert checkpoint_temperature({}) == 1.0  # a checkpoint from before calibration
    assert checkpoint_temperature({"calibration": {"method": "none", "temperature": 1.0}}) == 1.0
    assert checkpoint_temperature({"calibration": {"method": "temperature", "temperature": 1.7, "fitted_on": "val"}}) == 1.7
    with pytest.raises(ValueError, match="positive"):
        checkpoint_temperature({"calibration": {"method": "temperature", "temperature": -1}})


# --- metrics --------------------------------------------------------------------------


def test_ece_nll_brier_and_bins_equal_a_hand_computation():
    # Four examples, three classes. Confidences 0.5, 0.7, 0.9, 0.78; right, wrong, right, right.
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.7, 0.2, 0.1], [0.05, 0.05, 0.9], [0.11, 0.78, 0.11]])
    targets = torch.tensor([0, 1, 2, 1])
    m = calibration_metrics(probs, targets)
    # 15 bins of width 1/15: 0.5 -> bin 7 (0.4667, 0.5333], 0.7 -> bin 10 (0.6667, 0.7333],
    # 0.78 -> bin 11 (0.7333, 0.8], 0.9 -> bin 13 (0.8667, 0.9333]
    # ECE = 1/4 (|1 - 0.5| + |0 - 0.7| + |1 - 0.78| + |1 - 0.9|) = 1/4 * 1.52 = 0.38
    assert m["ece"] == pytest.approx(0.38)
    # NLL = -1/4 (ln 0.5 + ln 0.2 + ln 0.9 + ln 0.78)
    assert m["nll"] == pytest.approx(-(math.log(0.5) + math.log(0.2) + math.log(0.9) + math.log(0.78)) / 4)
    # Brier = 1/4 [(0.25+0.09+0.04) + (0.49+0.64+0.01) + (0.0025+0.0025+0.01) + (0.0121+0.0484+0.0121)]
    assert m["brier"] == pytest.approx((0.38 + 1.14 + 0.015 + 0.0726) / 4)
    assert m["accuracy"] == 0.75 and m["n"] == 4
    counts = [b["count"] for b in m["bins"]]
    assert len(counts) == 15 and sum(counts) == 4
    assert [i for i, c in enumerate(counts) if c] == [7, 10, 11, 13]
    assert m["bins"][10] == {"lower": pytest.approx(10 / 15), "upper": pytest.approx(11 / 15), "count": 1,
                             "confidence": pytest.approx(0.7), "accuracy": 0.0}
    assert m["bins"][0]["confidence"] is None and m["bins"][0]["accuracy"] is None

    # two examples in one bin: |mean accuracy - mean confidence| of the bin, not a sum per example
    two = calibration_metrics(torch.tensor([[0.62, 0.38], [0.64, 0.36]]), torch.tensor([0, 1]))
    assert two["ece"] == pytest.approx(abs(0.5 - 0.63))


def test_ece_equals_torchmetrics_multiclass_calibration_error():
    z, y = synthetic_scores(n=1000, seed=3)
    for scale in (0.5, 1.0, 3.0):
        probs = torch.softmax(scale * z, dim=1)
        expected = multiclass_calibration_error(probs, y, num_classes=4, n_bins=15, norm="l1")
        assert calibration_metrics(probs, y)["ece"] == pytest.approx(float(expected), abs=1e-6)


def test_metrics_refuse_logits_and_bad_shapes():
    with pytest.raises(ValueError, match="probabilities"):
        calibration_metrics(torch.tensor([[2.0, -1.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="empty"):
        calibration_metrics(np.zeros((0, 3)), np.zeros(0, dtype=int))
    with pytest.raises(ValueError, match="n_bins"):
        calibration_metrics(torch.tensor([[0.5, 0.5]]), torch.tensor([0]), n_bins=0)


def test_calibration_lowers_ece_and_the_diagram_is_written_from_consistent_bins(tmp_path):
    z, y = synthetic_scores(n=2000, seed=4)
    val, test = slice(0, 1000), slice(1000, None)
    t = fit_temperature(3 * z[val], y[val])
    before = calibration_metrics(softmax_probabilities(3 * z[test]), y[test])
    after = calibration_metrics(softmax_probabilities(3 * z[test], t), y[test])
    assert after["ece"] < 0.05 < before["ece"] and after["nll"] < before["nll"] and after["brier"] < before["brier"]
    assert after["accuracy"] == before["accuracy"]
    for m in (before, after):
        assert sum(b["count"] for b in m["bins"]) == 1000
        assert ece_from_bins(m["bins"]) == pytest.approx(m["ece"])
        assert all(b["lower"] < b["confidence"] <= b["upper"] for b in m["bins"] if b["count"])
    png = tmp_path / "reliability_diagram.png"
    reliability_diagram(before["bins"], after["bins"], png, title="synthetic test part")
    assert png.is_file() and png.stat().st_size > 10_000
    json.dumps(before)  # metrics.json-ready


# --- risk-coverage ----------------------------------------------------------------------


def test_risk_coverage_table_by_hand():
    # confidences 0.9 (right), 0.8 (wrong), 0.6 (right), 0.4 (wrong), 0.35 (right)
    probs = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.2, 0.6, 0.2], [0.3, 0.3, 0.4], [0.35, 0.33, 0.32]])
    targets = torch.tensor([0, 1, 1, 0, 0])
    table = risk_coverage(probs, targets, thresholds=(0.0, 0.5, 0.85, 0.95), coverages=(0.8, 0.5))
    assert table["accuracy"] == pytest.approx(0.6) and table["n"] == 5
    assert [(r["threshold"], r["coverage"], r["n_kept"]) for r in table["rows"]] == [(0.0, 1.0, 5), (0.5, 0.6, 3), (0.85, 0.2, 1), (0.95, 0.0, 0)]
    assert [r["accuracy"] for r in table["rows"]] == [pytest.approx(0.6), pytest.approx(2 / 3), 1.0, None]
    # 80 % of 5 = the 4 most confident (0.9, 0.8, 0.6, 0.4): 2 right; 50 % -> ceil(2.5) = 3: 2 right
    assert table["at_coverage"] == [{"coverage": 0.8, "n_kept": 4, "accuracy": 0.5, "threshold": pytest.approx(0.4)},
                                    {"coverage": 0.5, "n_kept": 3, "accuracy": pytest.approx(2 / 3), "threshold": pytest.approx(0.6)}]
    with pytest.raises(ValueError, match="thresholds"):
        risk_coverage(probs, targets, thresholds=(1.5,))


def test_risk_coverage_on_many_scores_is_monotone_and_plotted(tmp_path):
    z, y = synthetic_scores(n=800, seed=5)
    probs = softmax_probabilities(z)
    table = risk_coverage(probs, y)
    coverage = [r["coverage"] for r in table["rows"]]
    assert coverage[0] == 1.0 and all(a >= b for a, b in zip(coverage, coverage[1:], strict=False))
    assert table["rows"][0]["accuracy"] == pytest.approx(table["accuracy"])
    # on calibrated scores, keeping only confident predictions raises accuracy
    at80, at50 = table["at_coverage"]
    assert at50["accuracy"] > at80["accuracy"] > table["accuracy"]
    assert (at80["n_kept"], at50["n_kept"]) == (640, 400)
    # the reported threshold reproduces the coverage as a min_confidence rule
    kept = probs.max(1).values >= at80["threshold"]
    assert int(kept.sum()) == 640
    png = tmp_path / "risk_coverage.png"
    risk_coverage_plot(table, png)
    assert png.is_file() and png.stat().st_size > 10_000
    json.dumps(table)


# --- abstention -------------------------------------------------------------------------


def prediction(confidence: float | None, window_confidences: list[float | None], error: str | None = None) -> Prediction:
    def probs(c):
        return {} if c is None else {"angry": c, "sad": 1 - c}

    windows = [WindowPrediction(start=i, end=i + 3, energy_dbfs=-20.0, label=SILENCE if c is None else "angry",
                                confidence=c, probabilities=probs(c)) for i, c in enumerate(window_confidences)]
    label = None if error else (SILENCE if confidence is None else "angry")
    return Prediction(source="x.wav", label=label, confidence=confidence, probabilities=probs(confidence), error=error, windows=windows)


def test_min_confidence_labels_files_and_windows_uncertain_and_keeps_probabilities():
    p = prediction(0.55, [0.9, 0.52, None, 0.59])
    out = abstain(p, 0.6)
    assert out.label == UNCERTAIN and out.confidence == 0.55 and out.probabilities == {"angry": 0.55, "sad": pytest.approx(0.45)}
    assert [w.label for w in out.windows] == ["angry", UNCERTAIN, SILENCE, UNCERTAIN]
    assert p.label == "angry" and p.windows[1].label == "angry"  # the input is not modified
    assert abstain(prediction(0.6, [0.6]), 0.6).label == "angry"  # at the threshold: kept
    assert abstain(prediction(None, [None]), 0.9).label == SILENCE
    assert abstain(prediction(None, [], error="x.wav: cannot decode"), 0.9).label is None
    many = apply_min_confidence([p, prediction(0.95, [0.95])], 0.6)
    assert [q.label for q in many] == [UNCERTAIN, "angry"]
    assert abstention_summary(many, 0.6) == "uncertain (confidence < 0.6): 1 of 2 inputs, 2 of 5 windows"
    assert apply_min_confidence([p], None)[0].label == "angry"
    for bad in (1.5, -0.1, "high", True, math.nan):
        with pytest.raises(ValueError, match="min_confidence"):
            check_min_confidence(bad)


def test_predict_min_confidence_writes_uncertain_rows_with_exit_code_zero(ckpt, originals, tmp_path, capsys):
    from ser_lightning.cli.predict import run_predict as run_predict_cfg

    inputs = f"{originals}/savee/ALL/*.wav"
    out = tmp_path / "p.csv"
    assert run_predict_cfg(compose_predict(f"ckpt_path={ckpt}", f"input={inputs}", f"output={out}")) == 0
    with out.open() as fh:
        plain = {r["path"]: r for r in csv.DictReader(fh)}
    confidences = sorted(float(r["confidence"]) for r in plain.values())
    # a threshold between the lowest and the highest confidence: some inputs abstain, some not
    threshold = (confidences[0] + confidences[-1]) / 2
    proc = run_predict(f"ckpt_path={ckpt}", f"input={inputs}", f"output={out}", f"timeline={tmp_path / 't.csv'}",
                       f"min_confidence={threshold}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with out.open() as fh:
        rows = {r["path"]: r for r in csv.DictReader(fh)}
    n_uncertain = 0
    for path, r in rows.items():
        low = float(r["confidence"]) < threshold
        n_uncertain += low
        assert r["label"] == (UNCERTAIN if low else plain[path]["label"]) and r["error"] == ""
        assert [r[c] for c in CLASSES] == [plain[path][c] for c in CLASSES]  # probabilities still written
    assert 0 < n_uncertain < len(rows)
    assert f"uncertain (confidence < {threshold:g}): {n_uncertain} of {len(rows)} inputs" in proc.stdout
    with (tmp_path / "t.csv").open() as fh:
        windows = list(csv.DictReader(fh))
    assert all((w["label"] == UNCERTAIN) == (float(w["confidence"]) < threshold) for w in windows)
    assert run_predict_cfg(compose_predict(f"ckpt_path={ckpt}", f"input={inputs}", "min_confidence=2")) == 2
    assert "min_confidence=2" in capsys.readouterr().err


# --- a real small run ---------------------------------------------------------------------


def test_train_calibrates_the_best_checkpoint_on_validation(tmp_path, data_dir):
    """A small SAVEE run through train.py: the temperature is fitted on the validation
    part's files (their mean window probabilities), lowers the validation NLL, is stored in
    the best checkpoint (so every scoring path applies it), and the reports and figures say
    what it did."""
    from ser_lightning.evaluation.ensemble import evaluate_ensemble
    from ser_lightning.inference.predictor import Predictor
    from ser_lightning.training.pipeline import train
    from tests.helpers.configs import compose_train

    overrides = ["data=savee", "model=cnn1d", "features=mfcc", "logger=csv", "trainer=cpu", "trainer.max_epochs=8",
                 "data.batch_size=16", "callbacks.progress_bar.refresh_rate=0", "data.seed=3"]
    run = tmp_path / "run"
    train(compose_train(overrides, run, data_dir, tmp_path / "cache"))
    metrics = json.loads((run / "metrics.json").read_text())
    cal = metrics["calibration"]
    assert cal["method"] == "temperature" and cal["fitted_on"] == "val" and cal["n"] >= metrics["n_val"]
    assert cal["temperature"] != 1.0 and cal["nll_after"] < cal["nll_before"]
    assert cal["val"]["after"]["nll"] < cal["val"]["before"]["nll"]
    for part in ("val", "test"):
        for when in ("before", "after"):
            bins = cal[part][when]["bins"]
            assert sum(b["count"] for b in bins) == metrics[f"n_{part}"]
            assert cal[part][when]["ece"] == pytest.approx(ece_from_bins(bins), abs=1e-9)
    assert metrics["test/ece"] == cal["test"]["after"]["ece"] and metrics["test/ece_uncalibrated"] == cal["test"]["before"]["ece"]
    assert {r["coverage"] for r in cal["risk_coverage"]["at_coverage"]} == {0.8, 0.5}
    assert (run / "reliability_diagram.png").stat().st_size > 1000 and (run / "risk_coverage.png").stat().st_size > 1000
    # stored in the checkpoint: the predictor applies it, and calibration=none undoes it
    ckpt = run / metrics["best_checkpoint"]
    assert Predictor.from_checkpoint(ckpt, device="cpu").temperature == pytest.approx(cal["temperature"])
    assert Predictor.from_checkpoint(ckpt, device="cpu", calibration="none").temperature == 1.0
    # an ensemble of the one run refits the same temperature on the same validation logits
    scores = evaluate_ensemble([run])
    assert scores["test"].calibration["temperature"] == pytest.approx(cal["temperature"], rel=1e-6)
    np.testing.assert_allclose(scores["test"].probabilities, evaluate_ensemble([run], parts=("test",))["test"].probabilities, atol=1e-9)


def test_grouped_nll_scores_the_mean_of_a_files_window_probabilities():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [0.5, 0.5, 3.0]])
    targets = torch.tensor([0, 0, 2])  # windows 0 and 1 are one file (label 0), window 2 another (label 2)
    groups = [7, 7, 3]
    for t in (0.5, 1.0, 2.0):
        p = torch.softmax(logits.double() / t, dim=1)
        by_hand = -(torch.log((p[0, 0] + p[1, 0]) / 2) + torch.log(p[2, 2])) / 2
        assert nll(logits, targets, t, groups=groups) == pytest.approx(float(by_hand), rel=1e-12)
    # one window per file: the grouped fit is the plain one
    rng = np.random.default_rng(0)
    many = torch.from_numpy(rng.normal(size=(60, 4)) * 3)
    labels = torch.from_numpy(rng.integers(0, 4, size=60))
    assert fit_temperature(many, labels, groups=list(range(60))) == pytest.approx(fit_temperature(many, labels), rel=1e-6)
    record = fit_calibration(logits, targets, groups=groups)
    assert record["n"] == 2 and record["nll_after"] <= record["nll_before"] + 1e-12
    with pytest.raises(ValueError, match="groups"):
        nll(logits, targets, groups=[0, 1])


def test_auto_calibration_fits_only_on_speakers_the_model_was_not_trained_on():
    from ser_lightning.evaluation.scoring import ScoredPart

    rng = np.random.default_rng(1)
    logits = [rng.normal(size=(2, 4)) * 4 for _ in range(30)]  # two windows per file, over-confident
    targets = rng.integers(0, 4, size=30)
    part = ScoredPart("training", [f"f{i}" for i in range(30)], ["s1"] * 15 + ["s2"] * 15, [""] * 30, targets,
                      np.zeros((30, 4)), logits=logits)
    held_out = part.fit_calibration("auto", training_speakers={"s3", "s4"})
    assert held_out["method"] == "temperature" and held_out["temperature"] > 1 and held_out["n"] == 30
    same_voices = part.fit_calibration("auto", training_speakers={"s2", "s3"})
    assert same_voices["method"] == "none" and same_voices["temperature"] == 1.0 and "s2" in same_voices["note"]
    assert part.fit_calibration("temperature", training_speakers={"s2"})["temperature"] == held_out["temperature"]


def test_an_unknown_calibration_or_statistics_mode_stops_before_training(data_dir, tmp_path):
    from ser_lightning.errors import ConfigError
    from ser_lightning.training.config_validation import validate_config
    from tests.helpers.configs import compose_train

    cfg = compose_train(["data=savee", "calibration=platt", "test_stats=enrolled", "scoring=middle"], tmp_path, data_dir, tmp_path)
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert "calibration=platt" in str(err.value) and "enrolled" in str(err.value) and "scoring=middle" in str(err.value)


def test_pooled_bins_give_the_ece_of_all_examples_and_a_calibrated_model_sits_at_the_floor():
    from ser_lightning.evaluation.calibration import ece_noise_floor, pooled_bins

    rng = np.random.default_rng(3)
    parts = []
    for _ in range(3):
        probs = torch.softmax(torch.from_numpy(rng.normal(size=(200, 5)) * 2), dim=1)
        targets = torch.multinomial(probs, 1)[:, 0]  # labels drawn from the probabilities: calibrated by construction
        parts.append((probs, targets))
    together = calibration_metrics(torch.cat([p for p, _ in parts]), torch.cat([t for _, t in parts]))
    pooled = pooled_bins([calibration_metrics(p, t)["bins"] for p, t in parts])
    assert sum(b["count"] for b in pooled) == 600
    assert ece_from_bins(pooled) == pytest.approx(together["ece"], abs=1e-9)
    floor = ece_noise_floor(pooled)
    assert 0 < floor < 0.1 and abs(together["ece"] - floor) < 0.04  # a calibrated model: ECE is sampling noise
    assert ece_noise_floor(pooled, seed=1) == pytest.approx(floor, abs=0.01)


def test_restricted_softmax_gives_zero_to_left_out_classes():
    from ser_lightning.inference.calibration import calibrated_probabilities

    logits = np.array([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])
    probs = calibrated_probabilities(logits, 2.0, np.array([False, True, True]))
    assert probs[:, 0].tolist() == [0.0, 0.0]
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert probs.argmax(axis=1).tolist() == [2, 1]  # row 0's arg-max moves off the left-out class
    expected = np.exp(logits[0, 1:] / 2) / np.exp(logits[0, 1:] / 2).sum()
    assert np.allclose(probs[0, 1:], expected, atol=1e-6)
