import csv

import pytest
import torch

from ser_lightning.data.datamodule import SERDataModule
from ser_lightning.errors import DataQualityError
from tests.conftest import write_tone


def _manifest_corpus(root, n_good=12, n_bad=0):
    lines = ["path,label,speaker"]
    for i in range(n_good):
        label = ("happy", "sad", "angry")[i % 3]
        write_tone(root / f"good{i}.wav", seconds=0.5 + 0.05 * i, sr=22050, freq=150 + 20 * i)
        lines.append(f"good{i}.wav,{label},s{i % 4}")
    for i in range(n_bad):
        (root / f"bad{i}.wav").write_bytes(b"RIFF....WAVEfmt")
        lines.append(f"bad{i}.wav,happy,s{i % 4}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"


def _dm(manifest, tmp_path, **kwargs):
    args = dict(corpus="manifest", root=str(manifest), split="random", clip_seconds=0.6, batch_size=4,
                cache_dir=None, output_dir=str(tmp_path / "run"), features={"kind": "logmel"},
                augment={"noise": {"p": 1.0, "snr_db": [5, 10]}, "specaugment": {"p": 1.0}})
    args.update(kwargs)
    return SERDataModule(**args)


def test_bad_files_are_skipped_and_listed(tmp_path):
    manifest = _manifest_corpus(tmp_path / "c", n_good=30, n_bad=1)
    dm = _dm(manifest, tmp_path, max_bad_fraction=0.05)
    dm.setup("fit")
    assert len(dm.skipped) == 1
    with (tmp_path / "run" / "skipped_files.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and rows[0]["path"].endswith("bad0.wav") and "cannot decode" in rows[0]["reason"]
    used = sum(len(getattr(dm.split, p)) for p in ("train", "val", "test"))
    assert used == 30


def test_too_many_bad_files_stop_the_run(tmp_path):
    manifest = _manifest_corpus(tmp_path / "c", n_good=10, n_bad=3)
    with pytest.raises(DataQualityError, match="3 of 13"):
        _dm(manifest, tmp_path, max_bad_fraction=0.1).setup("fit")


def test_batches_shapes_and_training_only_augmentation(tmp_path):
    manifest = _manifest_corpus(tmp_path / "c")
    dm = _dm(manifest, tmp_path)
    dm.setup("fit")
    assert dm.class_names == ["happy", "sad", "angry"]
    waves, targets = next(iter(dm.val_dataloader()))
    assert waves.shape == (len(dm.split.val), 9600) and targets.dtype == torch.long
    clean = dm.features(waves)
    assert clean.shape == (len(dm.split.val), 64, 9600 // 160 + 1)
    assert torch.equal(dm.transform_batch(waves, training=False), clean)
    augmented = dm.transform_batch(waves, training=True)
    assert augmented.shape == clean.shape and not torch.allclose(augmented, clean)
    # evaluation clips are deterministic, training clips are random crops
    again, _ = next(iter(dm.val_dataloader()))
    assert torch.equal(waves, again)


def test_gender_filter(data_dir, tmp_path):
    dm = SERDataModule("ravdess", str(data_dir / "ravdess"), split="speaker", gender="female", cache_dir=str(tmp_path / "cache"))
    rows = dm.read_rows()
    assert rows and {r.gender for r in rows} == {"female"}
    assert all(int(r.speaker.split(":")[1]) % 2 == 0 for r in rows)
    with pytest.raises(ValueError, match="data.gender"):
        SERDataModule("ravdess", str(data_dir / "ravdess"), gender="other")
