"""Splits are read, never re-derived (issue 14): fingerprints of a split and of the data
settings, reading a run's recorded split back (also from another data root, also from
runs written before split.json), and unusable files dropped before any split."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ser_lightning.data.corpora import read_combined, read_crema_d, read_savee
from ser_lightning.data.datamodule import SERDataModule
from ser_lightning.data.recorded_split import compare_splits, data_fingerprint, describe_mismatch, find_run_dir, read_recorded_split, split_fingerprint
from ser_lightning.errors import SplitMismatchError
from ser_lightning.data.splits import Split, make_split
from ser_lightning.data.usable import derive_split

PARTS = ("train", "val", "test")


def _moved(split: Split, old: Path, new: Path) -> Split:
    """``split`` with every path's ``old`` prefix replaced by ``new`` (the data copied elsewhere)."""
    def move(rows):
        return [dataclasses.replace(r, path=str(new / Path(r.path).relative_to(old))) for r in rows]

    return Split(move(split.train), move(split.val), move(split.test), split.protocol)


def _rows(split: Split) -> dict[str, list[tuple]]:
    return {p: [dataclasses.astuple(r) for r in getattr(split, p)] for p in PARTS}


# --- fingerprints ----------------------------------------------------------------------


def test_split_fingerprint_ignores_row_order_and_where_the_data_lies(data_dir, tmp_path):
    root = data_dir / "savee"
    split = make_split(read_savee(root), "loso", fold=1)
    fp = split_fingerprint(split, root)
    assert len(fp) == 16 and int(fp, 16) >= 0
    shuffled = Split(*(random.Random(k).sample(getattr(split, p), len(getattr(split, p))) for k, p in enumerate(PARTS)), split.protocol)
    assert split_fingerprint(shuffled, root) == fp
    elsewhere = tmp_path / "disk2" / "corpora" / "savee"
    assert split_fingerprint(_moved(split, root, elsewhere), elsewhere) == fp
    # data=combined: paths relative to the data root, corpus folders included
    combined = make_split(read_combined(data_dir, corpora=["savee", "crema_d"]), "speaker", seed=3)
    fp_combined = split_fingerprint(combined, data_dir)
    assert split_fingerprint(_moved(combined, data_dir, tmp_path / "data"), tmp_path / "data") == fp_combined != fp


def test_split_fingerprint_changes_with_a_label_a_part_or_a_row(data_dir):
    root = data_dir / "savee"
    split = make_split(read_savee(root), "loso", fold=1)
    fp = split_fingerprint(split, root)
    first = split.test[0]
    relabelled = Split(split.train, split.val, [dataclasses.replace(first, label="surprise" if first.label != "surprise" else "sad"),
                                                *split.test[1:]], split.protocol)
    moved_part = Split(split.train + [first], split.val, split.test[1:], split.protocol)
    dropped = Split(split.train[1:], split.val, split.test, split.protocol)
    other_seed_fold = make_split(read_savee(root), "loso", fold=2)
    fingerprints = {split_fingerprint(s, root) for s in (relabelled, moved_part, dropped, other_seed_fold)}
    assert fp not in fingerprints and len(fingerprints) == 4


def test_data_fingerprint_normalises_settings_and_names_each_difference():
    trained = {"corpus": "ravdess", "split": "kfold", "fold": 2, "seed": 1, "val_fraction": 0.15,
               "reader_args": {}, "test_speakers": None, "root": "/data/ravdess", "batch_size": 64}
    same = OmegaConf.create({"corpus": "ravdess", "split": "kfold", "fold": 2, "seed": 1, "root": "/elsewhere/ravdess",
                             "num_folds": 5, "clip_seconds": 3, "batch_size": 8})  # defaults written out, other root/batch
    fp = data_fingerprint(trained)
    assert fp == data_fingerprint(same) and describe_mismatch(fp, same) == []
    assert fp["settings"]["clip_seconds"] == 3.0 and fp["settings"]["min_seconds"] == 0.1  # SERDataModule's default
    assert json.loads(json.dumps(fp)) == fp  # plain values: goes into a checkpoint's hyper-parameters
    other = {**trained, "seed": 2, "reader_args": {"calm": "neutral"}, "test_speakers": ["ravdess:01"]}
    lines = describe_mismatch(fp, other)
    assert data_fingerprint(other)["hash"] != fp["hash"]
    assert lines == ["data.seed: trained with 1, now 2", "data.test_speakers: trained with None, now ['ravdess:01']",
                     "data.reader_args: trained with {}, now {'calm': 'neutral'}"]


# --- a run's recorded split --------------------------------------------------------------


@pytest.fixture(scope="module")
def crema_run(tmp_path_factory, data_dir) -> tuple[Path, SERDataModule]:
    """A run directory written by SERDataModule on the 12-file CREMA-D sample (random split)."""
    run = tmp_path_factory.mktemp("run")
    dm = SERDataModule("crema_d", str(data_dir / "crema_d" / "AudioWAV"), seed=4, clip_seconds=1.0, cache_dir=None,
                       output_dir=str(run), features={"kind": "logmel"})
    dm.setup("fit")
    return run, dm


def test_recorded_split_reads_back_what_training_wrote(crema_run):
    run, dm = crema_run
    meta = json.loads((run / "splits" / "split.json").read_text())
    assert meta["fingerprint"] == dm.split_fingerprint and meta["protocol"] == "random"
    assert meta["data"] == dm.data_settings and meta["data"]["settings"]["seed"] == 4
    split = read_recorded_split(run, fingerprint=dm.split_fingerprint)
    assert _rows(split) == _rows(dm.split) and split.protocol == "random"
    assert len(split.test) == 2 and len(split.train) + len(split.val) + len(split.test) == 12
    assert find_run_dir(run / "checkpoints" / "best.ckpt") == run
    with pytest.raises(SplitMismatchError, match="no recorded split"):
        find_run_dir(run.parent / "loose.ckpt")


def test_recorded_split_moves_to_a_new_data_root_also_for_runs_without_split_json(crema_run, data_dir, tmp_path):
    run, dm = crema_run
    new_root = tmp_path / "mnt" / "crema_d" / "AudioWAV"
    shutil.copytree(data_dir / "crema_d" / "AudioWAV", new_root)
    moved = read_recorded_split(run, data_root=new_root, fingerprint=dm.split_fingerprint)
    assert all(Path(r.path).parent == new_root for p in PARTS for r in getattr(moved, p))
    assert _rows(moved) == _rows(_moved(dm.split, data_dir / "crema_d" / "AudioWAV", new_root))

    old_run = tmp_path / "old_run"  # written before split.json: absolute paths only
    shutil.copytree(run / "splits", old_run / "splits")
    (old_run / "splits" / "split.json").unlink()
    old = read_recorded_split(old_run, data_root=new_root, fingerprint=dm.split_fingerprint)
    assert _rows(old) == _rows(moved) and old.protocol == "recorded"

    (new_root / Path(dm.split.test[0].path).name).unlink()
    with pytest.raises(SplitMismatchError, match=f"1 of 12 files .* do not exist under {new_root}.*{Path(dm.split.test[0].path).name}"):
        read_recorded_split(run, data_root=new_root)
    with pytest.raises(SplitMismatchError, match="not found under data root"):
        read_recorded_split(old_run, data_root=tmp_path / "empty")


def test_a_changed_split_or_another_run_is_refused_and_the_difference_named(crema_run, data_dir, tmp_path):
    run, dm = crema_run
    edited = tmp_path / "edited"
    shutil.copytree(run / "splits", edited / "splits")
    test_csv = edited / "splits" / "test.csv"
    lines = test_csv.read_text().splitlines()
    (edited / "splits" / "train.csv").write_text((edited / "splits" / "train.csv").read_text() + lines[1] + "\n")
    test_csv.write_text("\n".join([lines[0], *lines[2:]]) + "\n")  # one test file moved into train
    with pytest.raises(SplitMismatchError, match=rf"\(now train 9, val 2, test 1; recorded train 8, val 2, test 2\) has fingerprint "
                                                 rf"\w+, not {dm.split_fingerprint}: its CSVs were changed"):
        read_recorded_split(edited)

    other = SERDataModule("crema_d", str(data_dir / "crema_d" / "AudioWAV"), seed=5, clip_seconds=1.0, cache_dir=None,
                          output_dir=None, features={"kind": "logmel"})
    other.setup("fit")
    assert other.split_fingerprint != dm.split_fingerprint
    with pytest.raises(SplitMismatchError, match=f"not {other.split_fingerprint}: it is not the split this checkpoint was trained on"):
        read_recorded_split(run, fingerprint=other.split_fingerprint)
    assert describe_mismatch(other.data_settings, dm.data_settings) == ["data.seed: trained with 5, now 4"]
    differences = compare_splits(dm.split, other.split, data_dir / "crema_d" / "AudioWAV")
    assert differences and all(line.split()[1:3] == ["files", "in"] for line in differences)
    assert "(test -> " in differences[0] or "(val -> " in differences[0] or "(train -> " in differences[0]
    with pytest.raises(SplitMismatchError, match="no recorded split"):
        read_recorded_split(tmp_path / "nothing")


# --- unusable files are dropped before the split ------------------------------------------


def test_one_unreadable_file_does_not_reshuffle_the_split(data_dir, tmp_path):
    source = data_dir / "crema_d" / "AudioWAV"
    copy = tmp_path / "crema_d"
    shutil.copytree(source, copy)
    bad = copy / "1002_DFA_HAP_XX.wav"
    bad.write_bytes(bad.read_bytes()[:30])  # header cut: unreadable
    without = tmp_path / "without" / "crema_d"
    shutil.copytree(source, without, ignore=shutil.ignore_patterns(bad.name))  # the file never existed

    cfg = {"corpus": "crema_d", "split": "random", "seed": 0, "max_bad_fraction": 0.1, "cache_dir": None}
    dm = SERDataModule(root=str(copy), clip_seconds=1.0, output_dir=None, features={"kind": "logmel"},
                       **cfg)
    dm.setup("fit")
    derived, usable = derive_split({**cfg, "root": str(copy)})
    assert list(usable.skipped) == [str(bad)]
    assert _rows(derived) == _rows(dm.split)  # re-derivation == training, file for file
    clean, _ = derive_split({**cfg, "root": str(without)})
    assert split_fingerprint(clean, without) == split_fingerprint(derived, copy) == dm.split_fingerprint

    # what select_rows did before: split all rows, and meet the unreadable file afterwards
    naive = make_split(read_crema_d(copy), "random", seed=0)
    naive = Split(*([r for r in getattr(naive, p) if r.path != str(bad)] for p in PARTS), naive.protocol)
    assert split_fingerprint(naive, copy) != dm.split_fingerprint  # the other 11 files land elsewhere


def test_the_recorded_setting_defaults_are_the_datamodules():
    """DATA_SETTING_DEFAULTS repeats SERDataModule's signature (so eval.py reads a recorded
    split without importing Lightning); the two must not drift apart."""
    import inspect

    from ser_lightning.data.datamodule import SERDataModule
    from ser_lightning.data.recorded_split import DATA_SETTING_DEFAULTS, DATA_SETTING_KEYS

    params = inspect.signature(SERDataModule.__init__).parameters
    signature = {k: params[k].default for k in DATA_SETTING_KEYS if params[k].default is not inspect.Parameter.empty}
    assert DATA_SETTING_DEFAULTS == signature
