"""scripts/results.py table: numbers come from the runs' metrics.json, unrun protocols say so."""

import argparse
import importlib.util
import json
import sys

from tests.conftest import REPO


def load_results_script():
    spec = importlib.util.spec_from_file_location("results_script", REPO / "scripts" / "results.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def fake_run(base, job, uar, war, by_corpus=None, val_uar=0.5):
    out = base / job
    out.mkdir(parents=True)
    metrics = {"test/uar": uar, "test/war": war, "best_val_uar": val_uar, "epochs": 9, "wall_seconds": 60.0, "split": f"split of {job}"}
    if by_corpus:
        metrics["test_by_corpus"] = by_corpus
    (out / "metrics.json").write_text(json.dumps(metrics))
    (out / "command.txt").write_text(f"python train.py job={job}\n")


def test_table_aggregates_runs_and_marks_the_rest_not_run(tmp_path, monkeypatch):
    results = load_results_script()
    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(results, "RESULTS_MD", tmp_path / "RESULTS.md")
    monkeypatch.setattr(results, "RECORDS_DIR", tmp_path / "records")
    base = tmp_path / "results" / "savee_loso" / "cnn1d-mfcc"
    base.mkdir(parents=True)
    recipe = {"model": "cnn1d", "features": "mfcc", "command": "python scripts/results.py run savee_loso --model cnn1d",
              "hardware": {"cpu": "Test CPU", "cpu_cores": 2}}
    (base / "recipe.json").write_text(json.dumps(recipe))
    fake_run(base, "test-DC", 0.50, 0.55)
    fake_run(base, "test-JE", 0.70, 0.75)
    combined = tmp_path / "results" / "combined" / "cnn1d-mfcc"
    combined.mkdir(parents=True)
    (combined / "recipe.json").write_text(json.dumps({**recipe, "command": "python scripts/results.py run combined"}))
    fake_run(combined, "seed0", 0.4, 0.5, {"tess": {"war": 0.9, "uar": 0.8, "n": 10}, "savee": {"war": 0.3, "uar": 0.2, "n": 5}})
    results.table(argparse.Namespace())
    text = (tmp_path / "RESULTS.md").read_text()
    savee = next(line for line in text.splitlines() if line.startswith("| SAVEE"))
    assert "60.0 ± 14.1" in savee and "65.0 ± 14.1" in savee  # mean ± sample std of 50/70 and 55/75
    assert "| cnn1d-mfcc | cnn1d | mfcc |" in savee  # the recipe tag tells rows of one model apart
    assert "2 of 3 (not run: test-JK)" in savee and "Test CPU" in savee
    assert "savee_loso (cnn1d-mfcc): mean test UAR 60.00% vs target 55.0%: **above target on the 2 run(s) made; incomplete**" in text
    assert "ravdess_kfold: UAR ≥ 65.0: **not run**" in text
    assert "| cnn1d-mfcc | seed0 | tess | 10 | 80.0 | 90.0 |" in text
    assert "`python train.py job=test-DC`" in text
    # the committed records keep the table when the run directories are gone
    assert (tmp_path / "records" / "savee_loso" / "cnn1d-mfcc" / "test-JE.json").is_file()
    import shutil

    shutil.rmtree(tmp_path / "results")
    (tmp_path / "RESULTS.md").unlink()
    results.table(argparse.Namespace())
    assert (tmp_path / "RESULTS.md").read_text() == text


def test_target_is_judged_on_the_recipe_validation_chose(tmp_path, monkeypatch):
    results = load_results_script()
    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(results, "RESULTS_MD", tmp_path / "RESULTS.md")
    monkeypatch.setattr(results, "RECORDS_DIR", tmp_path / "records")
    recipe = {"model": "cnn1d", "features": "mfcc", "command": "python scripts/results.py run savee_loso",
              "hardware": {"cpu": "Test CPU", "cpu_cores": 2}}
    # "best-test" has the better test scores, "best-val" the better validation scores
    for tag, val, test in [("best-test", 0.60, 0.70), ("best-val", 0.80, 0.50)]:
        base = tmp_path / "results" / "savee_loso" / tag
        base.mkdir(parents=True)
        (base / "recipe.json").write_text(json.dumps(recipe))
        for job in ["test-DC", "test-JE", "test-JK"]:
            fake_run(base, job, test, test, val_uar=val)
    # an incomplete recipe with the best validation score is not eligible
    base = tmp_path / "results" / "savee_loso" / "incomplete"
    base.mkdir(parents=True)
    (base / "recipe.json").write_text(json.dumps(recipe))
    fake_run(base, "test-DC", 0.9, 0.9, val_uar=0.99)
    runs = results.collect()
    assert results.select_by_validation(runs, "savee_loso") == "best-val"
    assert results.select_by_validation(runs, "ravdess_kfold") is None
    results.table(argparse.Namespace())
    text = (tmp_path / "RESULTS.md").read_text()
    assert "savee_loso (best-val): mean test UAR 50.00% vs target 55.0%: **not met**." in text
    assert "savee_loso (best-test): mean test UAR 70.00% vs target 55.0%: **above target; not the recipe validation chose (best-val)" in text
    best_val_row = next(line for line in text.splitlines() if line.startswith("| SAVEE") and "| 80.0 ± 0.0 (**chosen**) |" in line)
    assert "| 50.0 ± 0.0 |" in best_val_row
    # a recipe as good on validation as "best-val" leaves validation unable to choose
    base = tmp_path / "results" / "savee_loso" / "tie"
    base.mkdir(parents=True)
    (base / "recipe.json").write_text(json.dumps(recipe))
    for job in ["test-DC", "test-JE", "test-JK"]:
        fake_run(base, job, 0.6, 0.6, val_uar=0.80)
    assert results.select_by_validation(results.collect(), "savee_loso") is None
    results.table(argparse.Namespace())
    text = (tmp_path / "RESULTS.md").read_text()
    assert "savee_loso (best-val): mean test UAR 50.00% vs target 55.0%: **below target; validation UAR ties between recipes" in text
    savee_rows = [line for line in text.splitlines() if line.startswith("| SAVEE")]
    assert len(savee_rows) == 4 and not any("(**chosen**)" in line for line in savee_rows)


def test_protocol_command_drops_scheduling_options():
    results = load_results_script()
    cmd = "python scripts/results.py run ravdess_kfold --model cnn1d --jobs fold2,fold3 --no-start-after 02:35 --set trainer=cpu"
    assert results.protocol_command(cmd) == "python scripts/results.py run ravdess_kfold --model cnn1d --set trainer=cpu"
