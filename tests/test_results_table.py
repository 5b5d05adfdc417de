"""scripts/results.py table: numbers come from the runs' metrics.json, per test-time
statistics mode with bootstrap intervals; recipes are chosen fold by fold on validation;
records made before per-mode scoring still render; unrun protocols say so."""

import argparse
import json
import shutil

import numpy as np
import pytest

from ser_lightning.metrics import war_uar
from ser_lightning.evaluation.selection import nested_selection
from ser_lightning.evaluation import results as results_module

SAVEE_JOBS = ["test-DC", "test-JE", "test-JK"]
RECIPE = {"model": "cnn1d", "features": "mfcc", "command": "python scripts/results.py run savee_loso --model cnn1d",
          "hardware": {"cpu": "Test CPU", "cpu_cores": 2}}


@pytest.fixture
def results(tmp_path, monkeypatch):
    module = results_module
    monkeypatch.setattr(module, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(module, "RESULTS_MD", tmp_path / "RESULTS.md")
    monkeypatch.setattr(module, "RECORDS_DIR", tmp_path / "records")
    return module


def recipe_dir(tmp_path, protocol, tag, **recipe):
    base = tmp_path / "results" / protocol / tag
    base.mkdir(parents=True)
    (base / "recipe.json").write_text(json.dumps({**RECIPE, **recipe}))
    return base


def fake_run(base, job, uar, war, by_corpus=None, val_uar=0.5, **extra):
    """A run directory as training wrote it before per-mode scoring (no test_by_stats)."""
    out = base / job
    out.mkdir(parents=True)
    metrics = {"test/uar": uar, "test/war": war, "best_val_uar": val_uar, "epochs": 9, "wall_seconds": 60.0,
               "split": f"split of {job}", **extra}
    if by_corpus:
        metrics["test_by_corpus"] = by_corpus
    (out / "metrics.json").write_text(json.dumps(metrics))
    (out / "command.txt").write_text(f"python train.py job={job}\n")


def two_class_cm(right0, n0, right1, n1):
    """A 2-class confusion matrix: ``right0`` of ``n0`` class-0 and ``right1`` of ``n1`` class-1 examples right."""
    return [[right0, n0 - right0], [n1 - right1, right1]]


def new_run(base, job, val_uar, by_mode, parameters=1000, normalize="speaker"):
    """A run directory in the per-mode schema: ``by_mode`` = {mode: {speaker: confusion}}."""
    out = base / job
    out.mkdir(parents=True)
    test_by_stats = {}
    for mode, speakers in by_mode.items():
        cm = np.sum([np.asarray(c) for c in speakers.values()], axis=0)
        war, uar = war_uar(cm)
        test_by_stats[mode] = {"war": war, "uar": uar, "f1_macro": uar, "n": int(cm.sum()), "confusion_matrix": cm.tolist(),
                               "per_speaker_confusion": speakers}
    headline = "utterance" if normalize == "utterance" else "transductive"
    metrics = {"scoring": "windows", "test_stats": headline, "split_fingerprint": "0123456789abcdef0123",
               "test_by_stats": test_by_stats, "val/uar": val_uar, "val/war": val_uar, "val/f1_macro": val_uar,
               "best_val_uar": 0.0,  # not the best checkpoint's in this schema: val/uar is
               "test/uar": test_by_stats[headline]["uar"], "test/war": test_by_stats[headline]["war"],
               "confusion_matrix": test_by_stats[headline]["confusion_matrix"], "class_names": ["neutral", "angry"],
               "parameters": parameters, "epochs": 7, "wall_seconds": 30.0, "split": f"split of {job}"}
    (out / "metrics.json").write_text(json.dumps(metrics))
    (out / "command.txt").write_text(f"python train.py job={job}\n")
    (out / "config.yaml").write_text(f"features:\n  normalize: {normalize}\ntrainer:\n  max_epochs: 10\naugment: {{}}\n")


def row_of(text, tag):
    return next(line for line in text.splitlines() if line.startswith(f"| {tag} |"))


def cells(line):
    return [c.strip() for c in line.strip("|").split(" | ")]


def test_old_records_render_under_their_recorded_mode_and_the_rest_not_run(tmp_path, results):
    base = recipe_dir(tmp_path, "savee_loso", "cnn1d-mfcc")
    fake_run(base, "test-DC", 0.50, 0.55, confusion_matrix=two_class_cm(5, 10, 5, 10))
    fake_run(base, "test-JE", 0.70, 0.75, confusion_matrix=two_class_cm(7, 10, 7, 10))
    combined = recipe_dir(tmp_path, "combined", "cnn1d-mfcc", command="python scripts/results.py run combined")
    fake_run(combined, "seed0", 0.4, 0.5, {"tess": {"war": 0.9, "uar": 0.8, "n": 10}, "savee": {"war": 0.3, "uar": 0.2, "n": 5}})
    results.table(argparse.Namespace())
    text = (tmp_path / "RESULTS.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| recipe | normalisation |"))
    row = dict(zip(cells(header), cells(row_of(text, "cnn1d-mfcc")), strict=True))
    # no config.yaml: an utterance-normalised run; its test/* is the utterance figure, with a
    # fold-only interval (no per-speaker counts: ‡) and marked as recorded before per-mode scoring (†)
    assert row["normalisation"] == "utterance" and row["scoring"] == "center†"
    assert row["test UAR % utterance"].startswith("60.0 ± 14.1 [50.0, 70.0]‡†")
    assert row["test UAR % transductive"] == row["test UAR % enrol k=4"] == row["test UAR % training statistics"] == "—"
    assert row["test WAR % (statistics)"] == "65.0 ± 14.1 (utterance)"
    assert row["runs"] == "2 of 3 (not run: test-JK)" and row["val UAR %"] == "50.0 ± 0.0"
    assert "- `cnn1d-mfcc`: model cnn1d, features mfcc" in text and "Test CPU" in text
    assert "nested selection, utterance: test UAR **60.0 ± 14.1 [50.0, 70.0]‡**, WAR 65.0 (over 2 of 3 folds)" in text
    assert "test-JK: no candidate" in text
    assert "savee_loso, utterance: nested selection test UAR 60.00% vs target 55.0%: **above target on the 2 fold(s) with a choice; incomplete, no verdict**" in text
    assert "- ravdess_kfold: UAR ≥ 65.0: **not run**" in text
    assert "| cnn1d-mfcc | seed0 | tess | 10 | 80.0 | 90.0 |" in text
    assert "`python train.py job=test-DC`" in text
    # the combined run has no confusion matrix: no interval, the mean alone (1 of 3 seeds run)
    assert "| — | 40.0 (incomplete) | report |" in next(line for line in text.splitlines() if line.startswith("| TESS + RAVDESS"))
    # the committed records keep the table when the run directories are gone
    assert (tmp_path / "records" / "savee_loso" / "cnn1d-mfcc" / "test-JE.json").is_file()
    shutil.rmtree(tmp_path / "results")
    (tmp_path / "RESULTS.md").unlink()
    results.table(argparse.Namespace())
    assert (tmp_path / "RESULTS.md").read_text() == text


def test_new_schema_runs_show_every_mode_with_speaker_intervals(tmp_path, results):
    base = recipe_dir(tmp_path, "ravdess_kfold", "spk", command="python scripts/results.py run ravdess_kfold --model cnn1d")
    for k, job in enumerate(results.PROTOCOLS["ravdess_kfold"].jobs):
        good, bad = two_class_cm(9, 10, 9 - k, 10), two_class_cm(6, 10, 4, 10)
        new_run(base, job, 0.6 + 0.01 * k, {"transductive": {"01": good, "02": bad},
                                            "enrol4": {"01": two_class_cm(5, 6, 5, 6), "02": two_class_cm(3, 6, 3, 6)},
                                            "enrol8": {"01": two_class_cm(1, 2, 1, 2), "02": two_class_cm(2, 2, 1, 2)},
                                            "training": {"01": two_class_cm(5, 10, 5, 10), "02": two_class_cm(5, 10, 4, 10)}})
    runs = results.collect()
    record = json.loads((tmp_path / "records" / "ravdess_kfold" / "spk" / "fold0.json").read_text())
    assert record["normalize"] == "speaker"  # read from the run's config.yaml
    for key in ("scoring", "test_stats", "split_fingerprint", "test_by_stats"):
        assert key in record["metrics"]  # records copy metrics.json whole
    results.table(argparse.Namespace())
    text = (tmp_path / "RESULTS.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| recipe | normalisation |"))
    row = dict(zip(cells(header), cells(row_of(text, "spk")), strict=True))
    assert row["scoring"] == "windows" and row["normalisation"] == "speaker"
    assert row["val UAR %"].startswith("62.0 ± ")  # val/uar, the best checkpoint's (best_val_uar is 0 here)
    expected = {"transductive": [], "enrol4": [], "training": []}
    for r in runs:
        for mode in expected:
            expected[mode].append(r["metrics"]["test_by_stats"][mode]["uar"])
    for mode, title in [("transductive", "transductive"), ("enrol4", "enrol k=4"), ("training", "training statistics")]:
        cell = row[f"test UAR % {title}"]
        assert cell.startswith(f"{100 * np.mean(expected[mode]):.1f} ± {100 * np.std(expected[mode], ddof=1):.1f} [")
        assert "‡" not in cell and "†" not in cell  # per-speaker counts: speakers resampled too
        low, high = (float(x) for x in cell.split("[")[1].rstrip("]").split(", "))
        assert low <= 100 * np.mean(expected[mode]) <= high
    assert row["test UAR % utterance"] == "—"
    enrol8 = row["test UAR % enrol k=8"]
    assert enrol8.startswith("62.5 ± 0.0 [") and "]" in enrol8  # 2 examples each: a wide interval, still shown
    assert "(split 0123456789ab)" in text  # the split fingerprint in the every-run table
    # fold0 pooled over both speakers: transductive recalls 15/20 and 13/20 -> UAR 70.0
    fold0 = next(line for line in text.splitlines() if line.startswith("| ravdess_kfold | spk | fold0 |"))
    assert "| windows | transductive 70.0; enrol k=4 66.7; enrol k=8 62.5; training statistics 47.5 |" in fold0


def test_nested_selection_chooses_per_fold_on_validation_and_averages_the_choices(tmp_path, results):
    # "a" wins validation on test-DC, "b" on test-JE and test-JK; "b" has the better mean
    # test score, "a" is better on test-DC: the nested figure mixes the two
    test_uar = {("a", "test-DC"): (9, 7), ("a", "test-JE"): (5, 5), ("a", "test-JK"): (5, 5),
                ("b", "test-DC"): (6, 6), ("b", "test-JE"): (8, 8), ("b", "test-JK"): (7, 9)}
    val = {("a", "test-DC"): 0.9, ("a", "test-JE"): 0.5, ("a", "test-JK"): 0.6,
           ("b", "test-DC"): 0.8, ("b", "test-JE"): 0.7, ("b", "test-JK"): 0.7}
    for tag in ("a", "b"):
        base = recipe_dir(tmp_path, "savee_loso", tag)
        for job in SAVEE_JOBS:
            r0, r1 = test_uar[(tag, job)]
            spk = job.removeprefix("test-")
            new_run(base, job, val[(tag, job)], {"transductive": {spk: two_class_cm(r0, 10, r1, 10)},
                                                 "training": {spk: two_class_cm(r0 - 1, 10, r1 - 1, 10)}})
    runs = results.collect()
    sel = nested_selection([r for r in runs if r["protocol"] == "savee_loso"], SAVEE_JOBS, "transductive")
    assert [c.tag for c in sel.choices] == ["a", "b", "b"] and sel.complete
    chosen = [0.8, 0.8, 0.8]  # (9+7)/20, (8+8)/20, (7+9)/20
    assert sel.uar == pytest.approx(np.mean(chosen)) and sel.ci.low == pytest.approx(0.8) == sel.ci.high
    training = nested_selection([r for r in runs if r["protocol"] == "savee_loso"], SAVEE_JOBS, "training")
    assert [c.tag for c in training.choices] == ["a", "b", "b"] and training.uar == pytest.approx(0.7)
    results.table(argparse.Namespace())
    text = (tmp_path / "RESULTS.md").read_text()
    assert ("nested selection, transductive: test UAR **80.0 ± 0.0 [80.0, 80.0]**, WAR 80.0; target UAR ≥ 55.0: **met**. "
            "Chosen: test-DC: `a` (val 90.0); test-JE: `b` (val 70.0); test-JK: `b` (val 70.0).") in text
    assert "nested selection, training statistics: test UAR **70.0 ± 0.0 [70.0, 70.0]**" in text
    assert "savee_loso, transductive: nested selection test UAR 80.00% vs target 55.0%: **met**." in text
    assert "nested selection, enrol k=4: — (no run of this protocol was scored under it)." in text
    summary = next(line for line in text.splitlines() if line.startswith("| SAVEE"))
    assert "| 80.0 ± 0.0 [80.0, 80.0] |" in summary and "| 70.0 ± 0.0 [70.0, 70.0] |" in summary


def test_ties_fewest_parameters_then_no_choice_when_every_recipe_ties(tmp_path, results):
    for tag, params, right in [("big", 5000, 9), ("small", 100, 6), ("worse", 10, 8)]:
        base = recipe_dir(tmp_path, "savee_loso", tag)
        for job in SAVEE_JOBS:
            new_run(base, job, 0.5 if tag == "worse" else 0.9, {"transductive": {job: two_class_cm(right, 10, right, 10)}},
                    parameters=params)
    runs = [r for r in results.collect() if r["protocol"] == "savee_loso"]
    sel = nested_selection(runs, SAVEE_JOBS, "transductive")
    # "big" and "small" tie on validation; the smaller model is chosen, never by test score
    assert {c.tag for c in sel.choices} == {"small"} and {c.rule for c in sel.choices} == {"tie: fewest parameters"}
    assert sel.uar == pytest.approx(0.6)
    tie_only = [r for r in runs if r["tag"] != "worse"]
    for r in tie_only:
        r["metrics"]["parameters"] = 100
    # every candidate ties (a validation set all recipes master): no choice, no figure
    none = nested_selection(tie_only, SAVEE_JOBS, "transductive")
    assert {c.tag for c in none.choices} == {None} and none.uar is None and not none.complete and {c.rule for c in none.choices} == {"no choice"}
    shutil.rmtree(tmp_path / "records" / "savee_loso" / "worse")
    shutil.rmtree(tmp_path / "results" / "savee_loso" / "worse")
    results.table(argparse.Namespace())
    text = (tmp_path / "RESULTS.md").read_text()
    assert "nested selection, transductive: **no figure**: validation cannot choose on any fold. Folds: test-DC: no choice (2 recipes at val 90.0)" in text
    assert "savee_loso, transductive: validation cannot choose on any fold (every recipe ties), so no figure and no verdict." in text


def test_old_and_new_records_of_one_protocol_compete_under_the_mode_they_share(tmp_path, results):
    old = recipe_dir(tmp_path, "savee_loso", "old")
    new = recipe_dir(tmp_path, "savee_loso", "new")
    for job in SAVEE_JOBS:
        fake_run(old, job, 0.5, 0.5, val_uar=0.95, confusion_matrix=two_class_cm(5, 10, 5, 10))
        (old / job / "config.yaml").write_text("features:\n  normalize: speaker\ntrainer:\n  max_epochs: 10\n")
        new_run(new, job, 0.9, {"transductive": {job: two_class_cm(8, 10, 8, 10)}, "enrol4": {job: two_class_cm(7, 10, 7, 10)}})
    runs = [r for r in results.collect() if r["protocol"] == "savee_loso"]
    # transductive: the old recipe (its test/*) has the better validation UAR on every fold
    assert {c.tag for c in nested_selection(runs, SAVEE_JOBS, "transductive").choices} == {"old"}
    # enrol k=4: only the new recipe was scored so
    enrol = nested_selection(runs, SAVEE_JOBS, "enrol4")
    assert {c.tag for c in enrol.choices} == {"new"} and {c.rule for c in enrol.choices} == {"only candidate"}
    results.table(argparse.Namespace())
    text = (tmp_path / "RESULTS.md").read_text()
    old_row = cells(row_of(text, "old"))
    assert old_row[1:4] == ["speaker", "center†", "95.0 ± 0.0"] and old_row[4] == "50.0 ± 0.0 [50.0, 50.0]‡†" and old_row[5] == "—"
    assert cells(row_of(text, "new"))[5].startswith("70.0 ± 0.0 [70.0, 70.0]")


def test_inconsistent_per_speaker_counts_are_refused_with_the_run_named(tmp_path, results):
    base = recipe_dir(tmp_path, "savee_loso", "bad")
    new_run(base, "test-DC", 0.9, {"transductive": {"DC": two_class_cm(8, 10, 8, 10)}})
    metrics_file = base / "test-DC" / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    metrics["test_by_stats"]["transductive"]["confusion_matrix"] = two_class_cm(1, 10, 8, 10)
    metrics_file.write_text(json.dumps(metrics))
    with pytest.raises(ValueError, match="savee_loso/bad/test-DC.*do not add up"):
        results.table(argparse.Namespace())


def test_protocol_command_drops_scheduling_options():
    results = results_module
    cmd = "python scripts/results.py run ravdess_kfold --model cnn1d --jobs fold2,fold3 --no-start-after 02:35 --set trainer=cpu"
    assert results.protocol_command(cmd) == "python scripts/results.py run ravdess_kfold --model cnn1d --set trainer=cpu"


def test_the_protocols_are_conf_protocol_yaml_files_in_table_order(tmp_path):
    from ser_lightning.evaluation.results import PROTOCOLS, load_protocols

    assert list(PROTOCOLS) == ["ravdess_kfold", "tess_random", "tess_cross", "savee_loso", "savee_loso_multi", "combined", "loco",
                               "loco7", "general7", "own7"]  # docs/RESULTS.md's order
    assert PROTOCOLS["savee_loso"].target == ("uar", 0.55) and list(PROTOCOLS["savee_loso"].jobs) == SAVEE_JOBS
    spec = "corpus: X\nheld_out: none\noverrides: [data=tess]\njobs: {seed0: [seed=0]}\ntarget: {metric: war, value: 0.9}\n"
    (tmp_path / "a.yaml").write_text("order: 1\n" + spec)
    (tmp_path / "b.yaml").write_text("order: 0\n" + spec.replace("target: {metric: war, value: 0.9}", "target: null"))
    loaded = load_protocols(tmp_path)
    assert list(loaded) == ["b", "a"] and loaded["a"].target == ("war", 0.9) and loaded["b"].target is None
    (tmp_path / "c.yaml").write_text("order: 2\nrecipe: cnn2d\n" + spec)
    with pytest.raises(TypeError):  # an unknown field is an error, not silently ignored
        load_protocols(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_protocols(tmp_path / "nowhere")


def test_general_model_is_set_beside_each_corpus_alone_on_the_same_recipe(tmp_path, results):
    general = recipe_dir(tmp_path, "general7", "gen", command="python scripts/results.py run general7")
    fake_run(general, "seed0", 0.4, 0.5, {"ased": {"war": 0.6, "uar": 0.55, "n": 40}, "nemo": {"war": 0.3, "uar": 0.3, "n": 20},
                                          "tess": {"war": 0.5, "uar": 0.5, "n": 10}})
    alone = recipe_dir(tmp_path, "own7", "gen", command="python scripts/results.py run own7")
    fake_run(alone, "ased", 0.60, 0.6)
    fake_run(alone, "nemo", 0.25, 0.3)
    other = recipe_dir(tmp_path, "own7", "other-recipe", command="python scripts/results.py run own7")
    fake_run(other, "tess", 0.9, 0.9)  # another recipe: never paired with gen
    variant = recipe_dir(tmp_path, "general7", "gen-corpus-sampler", command="python scripts/results.py run general7")
    fake_run(variant, "seed0", 0.5, 0.5, {"ased": {"war": 0.7, "uar": 0.7, "n": 40}})
    for other_recipe in ("genx", "gen-2ep"):  # other recipes than gen: no pair
        fake_run(recipe_dir(tmp_path, "general7", other_recipe, command="python scripts/results.py run general7"), "seed0", 0.5, 0.5,
                 {"ased": {"war": 0.7, "uar": 0.7, "n": 40}})
    results.table(argparse.Namespace())
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| gen | seed0 | ased | 40 | 55.0 | 60.0 (gen) | -5.0 |" in text
    assert "| gen | seed0 | nemo | 20 | 30.0 | 25.0 (gen) | +5.0 |" in text
    section = text.split("## The general model against")[1].split("## Notes")[0]
    assert "| gen | seed0 | tess |" not in section and "| genx |" not in section and "| gen-2ep |" not in section
    assert "| gen-corpus-sampler | seed0 | ased | 40 | 70.0 | 60.0 (gen) | +10.0 |" in section
