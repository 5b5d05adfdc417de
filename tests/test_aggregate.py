"""The multirun aggregator: jobs grouped by their varying overrides, folds/seeds collapsed."""

from __future__ import annotations

import csv
import json
import statistics

import pytest
import yaml

from ser_lightning.evaluation.aggregate import aggregate, main


def make_job(root, num, overrides, metrics=None):
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))


def test_folds_collapse_into_mean_and_std_per_configuration(tmp_path):
    uar = {("cnn1d", 0): 0.50, ("cnn1d", 1): 0.60, ("cnn1d", 2): 0.70, ("cnn2d", 0): 0.40, ("cnn2d", 1): 0.44}
    num = 0
    for (model, fold), value in uar.items():
        make_job(tmp_path, num, ["trainer=cpu", f"model={model}", f"data.fold={fold}"],
                 {"test/uar": value, "test/war": value + 0.1, "best_val_uar": value - 0.05, "split": f"kfold5-{fold}"})
        num += 1
    make_job(tmp_path, num, ["trainer=cpu", "model=cnn2d", "data.fold=2"])  # crashed: no metrics.json
    rows = aggregate(tmp_path)
    assert [r["model"] for r in rows] == ["cnn1d", "cnn2d"]
    assert "trainer" not in rows[0] and "data.fold" not in rows[0]  # same everywhere / collapsed
    cnn1d, cnn2d = rows
    assert (cnn1d["runs"], cnn1d["failed"], cnn2d["runs"], cnn2d["failed"]) == (3, 0, 2, 1)
    assert cnn1d["test UAR mean"] == pytest.approx(60.0)
    assert cnn1d["test UAR std"] == pytest.approx(statistics.stdev([50.0, 60.0, 70.0]))
    assert cnn2d["test WAR mean"] == pytest.approx(52.0)
    md = (tmp_path / "summary.md").read_text()
    assert "| model | runs | failed | test UAR (%) | test WAR (%) | best val UAR (%) |" in md
    assert "| cnn1d | 3 | 0 | 60.00 ± 10.00 | 70.00 ± 10.00 | 55.00 ± 10.00 |" in md
    with (tmp_path / "summary.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert table[1]["model"] == "cnn2d" and float(table[1]["test UAR mean"]) == pytest.approx(42.0)
    with (tmp_path / "jobs.csv").open() as fh:
        jobs = list(csv.DictReader(fh))
    assert len(jobs) == 6 and sum(j["finished"] == "False" for j in jobs) == 1


def test_single_run_has_no_std_and_missing_dir_is_an_error(tmp_path, capsys):
    make_job(tmp_path / "sweep", 0, ["seed=1"], {"test/uar": 0.5, "test/war": 0.5})
    make_job(tmp_path / "sweep", 1, ["seed=2"], {"test/uar": 0.7, "test/war": 0.9})
    rows = aggregate(tmp_path / "sweep")
    assert len(rows) == 1 and rows[0]["runs"] == 2 and rows[0]["test UAR mean"] == pytest.approx(60.0)
    assert rows[0]["best val UAR mean"] is None
    assert main([str(tmp_path / "sweep"), "--collapse"]) == 0  # nothing collapsed: one row per seed
    assert "| 2 | 1 | 0 | 70.00 |" in (tmp_path / "sweep" / "summary.md").read_text()
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().out


def test_runs_scored_per_mode_get_a_column_per_mode_and_the_best_checkpoints_validation(tmp_path):
    def per_mode(uar):
        return {"transductive": {"uar": uar, "war": uar}, "enrol4": {"uar": uar - 0.1, "war": uar - 0.1}}

    for num, (fold, uar) in enumerate([(0, 0.6), (1, 0.8)]):
        make_job(tmp_path, num, ["model=cnn1d", f"data.fold={fold}"],
                 {"test/uar": uar, "test/war": uar, "val/uar": uar - 0.2, "best_val_uar": 0.0, "scoring": "windows",
                  "test_stats": "transductive", "test_by_stats": per_mode(uar)})
    make_job(tmp_path, 2, ["model=cnn1d", "data.fold=2"], {"test/uar": 0.5, "test/war": 0.5, "best_val_uar": 0.4})  # older run
    (row,) = aggregate(tmp_path)
    # validation: val/uar (the best checkpoint's) for per-mode runs, best_val_uar for the older one
    assert row["best val UAR mean"] == pytest.approx(statistics.fmean([40.0, 60.0, 40.0]))
    assert row["test UAR enrol k=4 mean"] == pytest.approx(60.0) and row["test UAR transductive mean"] == pytest.approx(70.0)
    md = (tmp_path / "summary.md").read_text()
    assert "| test UAR transductive (%) | test UAR enrol k=4 (%) |" in md and "| 70.00 ± 14.14 | 60.00 ± 14.14 |" in md
    with (tmp_path / "jobs.csv").open() as fh:
        jobs = list(csv.DictReader(fh))
    assert [j["scoring"] for j in jobs] == ["windows", "windows", ""] and float(jobs[0]["best val UAR (%)"]) == pytest.approx(40.0)
