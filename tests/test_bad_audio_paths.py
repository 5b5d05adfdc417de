"""One FLAC file corrupted after its header (libsndfile: "flac decoder lost sync") on
every path that decodes audio: predict.py, training's waveform cache and eval. The file
becomes an error row or a skip entry with libsndfile's reason; the others are still
predicted, trained on or scored (issue 14, "the same rules for bad input on every path")."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import soundfile as sf

from ser_lightning.evaluation.evaluate import evaluate_checkpoint
from ser_lightning.data.datamodule import SERDataModule
from tests.conftest import corrupt_middle
from tests.helpers.checkpoints import CLASSES, run_script

#: SAVEE files copied per speaker (angry, happy, neutral, sad: the test model's classes).
NAMES = ("a01", "a02", "a03", "h01", "h02", "n01", "n02", "sa01", "sa02")
SPEAKERS = ("DC", "JE", "JK")
BAD = "JK_h02.flac"


@pytest.fixture(scope="module")
def savee_copy(tmp_path_factory, data_dir) -> Path:
    """A 27-file SAVEE copy (``<root>/ALL/*.flac``) whose ``JK_h02.flac`` is damaged in
    the middle (bytes 40-60 % replaced); plain ``soundfile.read`` fails on it."""
    root = tmp_path_factory.mktemp("savee")
    for spk in SPEAKERS:
        for name in NAMES:
            src = data_dir / "savee" / "ALL" / f"{spk}_{name}.flac"
            if src.name == BAD:
                corrupt_middle(src, root / "ALL" / src.name)
            else:
                (root / "ALL").mkdir(exist_ok=True)
                (root / "ALL" / src.name).write_bytes(src.read_bytes())
    bad = root / "ALL" / BAD
    assert sf.info(str(bad)).frames > 0  # a valid header ...
    with pytest.raises(sf.LibsndfileError, match="lost sync"):  # ... and damaged data
        sf.read(str(bad))
    return root


def test_predict_py_writes_an_error_row_for_the_corrupted_file_and_predicts_the_others(ckpt, savee_copy, tmp_path):
    out = tmp_path / "preds.csv"
    proc = run_script("predict.py", f"ckpt_path={ckpt}", f"input={savee_copy / 'ALL'}", f"output={out}", "progress=false", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # docs/PREDICTION.md: 1 = some inputs failed, the rest predicted
    assert "Traceback" not in proc.stderr and "1 of 27 inputs could not be predicted" in proc.stderr
    with out.open() as fh:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(fh)}
    assert len(rows) == 27
    bad = rows.pop(BAD)
    assert bad["label"] == "" and "lost sync" in bad["error"] and BAD in bad["error"]
    assert all(r["error"] == "" and r["label"] in CLASSES for r in rows.values())


def test_training_skips_the_corrupted_file_with_its_reason_also_from_a_reused_cache(savee_copy, tmp_path):
    def setup(run: str) -> SERDataModule:
        dm = SERDataModule("savee", str(savee_copy), split="speaker", clip_seconds=1.0, batch_size=4,
                           cache_dir=str(tmp_path / "cache"), output_dir=str(tmp_path / run), features={"kind": "logmel"})
        dm.setup("fit")
        return dm

    for run in ("first", "cached"):  # the second run reads the waveform cache the first one wrote
        dm = setup(run)
        with (tmp_path / run / "skipped_files.csv").open() as fh:
            skipped = list(csv.DictReader(fh))
        assert [Path(r["path"]).name for r in skipped] == [BAD] and "lost sync" in skipped[0]["reason"]
        used = [r.path for part in ("train", "val", "test") for r in getattr(dm.split, part)]
        assert len(used) == 26 and not any(p.endswith(BAD) for p in used)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1


def test_eval_skips_the_corrupted_file_and_scores_the_others(ckpt, savee_copy, tmp_path):
    data_cfg = {"corpus": "savee", "root": str(savee_copy), "cache_dir": str(tmp_path / "cache")}
    report = evaluate_checkpoint(ckpt, data_cfg, part="all", unknown_labels="drop", device="cpu", output_dir=tmp_path / "eval")
    assert list(report["skipped_files"]) == [str(savee_copy / "ALL" / BAD)]
    assert "lost sync" in report["skipped_files"][str(savee_copy / "ALL" / BAD)]
    assert report["n_evaluated"] == 26
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert list(written["skipped_files"]) == [str(savee_copy / "ALL" / BAD)]
