"""Corpus combination (data=combined), cross-speaker and per-corpus splits, the gender
filter, balanced sampling and per-corpus test metrics."""

from collections import Counter

import numpy as np
import pytest
import torch

from ser_lightning.data.corpora import read_combined
from ser_lightning.data.datamodule import SERDataModule
from ser_lightning.data.splits import cross_speaker_split, make_split
from ser_lightning.evaluation.scoring import ScoredPart, by_group


@pytest.fixture(scope="module")
def combined_rows(data_dir):
    return read_combined(data_dir, corpora=["tess", "ravdess", "savee", "crema_d"])


def test_combined_maps_every_corpus_onto_one_emotion_set(combined_rows):
    by_corpus = Counter(r.corpus for r in combined_rows)
    assert by_corpus == {"tess": 2520, "ravdess": 1200 - 160, "savee": 360, "crema_d": 12}  # 160 calm files (8 per actor) dropped
    labels = {r.label for r in combined_rows}
    assert labels == {"neutral", "happy", "sad", "angry", "fear", "disgust", "surprise"}
    # TESS pleasant surprise, RAVDESS surprised and SAVEE su are one class.
    assert {r.corpus for r in combined_rows if r.label == "surprise"} == {"tess", "ravdess", "savee"}
    assert len({r.speaker for r in combined_rows}) == 2 + 20 + 3 + 2  # prefixed ids never collide


def test_combined_calm_policies(data_dir):
    rows = read_combined(data_dir, corpora=["ravdess"], calm="neutral")
    assert Counter(r.label for r in rows)["neutral"] == 80 + 160 and "calm" not in {r.label for r in rows}
    assert Counter(r.label for r in read_combined(data_dir, corpora=["ravdess"], calm="keep"))["calm"] == 160
    with pytest.raises(ValueError, match="calm"):
        read_combined(data_dir, calm="sleepy")
    with pytest.raises(ValueError, match="cannot be combined"):
        read_combined(data_dir, corpora=["tess", "voxceleb"])


def test_combined_split_holds_out_speakers_of_every_corpus(combined_rows):
    split = make_split(combined_rows, "speaker", 0.15, 0.15, seed=0)
    assert split.protocol == "speaker-per-corpus"
    for corpus in ("tess", "ravdess", "savee", "crema_d"):
        train = {r.speaker for r in split.train if r.corpus == corpus}
        test = {r.speaker for r in split.test if r.corpus == corpus}
        val = {r.speaker for r in split.val if r.corpus == corpus}
        assert test and train and not (test & train) and not (val & (train | test)), corpus
    assert len(split.train) + len(split.val) + len(split.test) == len(combined_rows)


def test_cross_speaker_split_tess(data_dir):
    from ser_lightning.data.corpora import read_tess

    rows = read_tess(data_dir / "tess")
    split = make_split(rows, "cross", val_fraction=0.15, seed=0, train_speakers=["OAF"], test_speakers=["tess:YAF"])
    assert {r.speaker for r in split.test} == {"tess:YAF"} and len(split.test) == 1260
    assert {r.speaker for r in split.train} == {r.speaker for r in split.val} == {"tess:OAF"}
    assert not {r.path for r in split.train} & {r.path for r in split.val}
    assert abs(len(split.val) - 0.15 * 1260) <= 1
    assert set(Counter(r.label for r in split.val).values()) <= {27, 28}  # stratified: 7 classes x 27
    with pytest.raises(ValueError, match="not in the data"):
        cross_speaker_split(rows, ["ZZZ"], None, 0.15, 0)
    with pytest.raises(ValueError, match="test_speakers"):
        make_split(rows, "cross")


def test_gender_filter_on_combined_corpora(data_dir):
    dm = SERDataModule("combined", str(data_dir), reader_args={"corpora": ["tess", "ravdess", "savee", "crema_d"]}, gender="female")
    rows = dm.read_rows()
    # TESS (2 women) and the even RAVDESS actors stay; SAVEE (men) and the CREMA-D sample
    # (gender unknown without VideoDemographics.csv) are left out.
    assert Counter(r.corpus for r in rows) == {"tess": 2520, "ravdess": 520}
    assert {r.gender for r in rows} == {"female"}
    with pytest.raises(ValueError, match="no male speakers"):
        SERDataModule("tess", str(data_dir / "tess"), gender="male").read_rows()


def test_balanced_sampler_evens_out_classes(data_dir, tmp_path):
    dm = SERDataModule("combined", str(data_dir), reader_args={"corpora": ["savee"]}, sampler="balanced",
                       split="cross", test_speakers=["DC"], cache_dir=str(tmp_path), batch_size=60)
    dm.setup("fit")
    torch.manual_seed(0)
    drawn = torch.cat([dm.targets("train")[list(iter(dm.train_dataloader().sampler))] for _ in range(5)])
    share = torch.bincount(drawn, minlength=len(dm.class_names)).float() / len(drawn)
    counts = torch.tensor(dm.class_counts("train"), dtype=torch.float)
    assert counts.max() / counts.min() >= 2  # SAVEE has twice as many neutral files as any other class
    assert (share - 1 / len(dm.class_names)).abs().max() < 0.04
    with pytest.raises(ValueError, match="sampler"):
        SERDataModule("savee", "x", sampler="oversample")


def test_metrics_by_group():
    preds = [0, 1, 1, 1, 2, 2]
    targets = np.array([0, 1, 0, 1, 2, 0])
    probs = np.eye(3)[preds]
    part = ScoredPart("utterance", [f"f{i}" for i in range(6)], ["s"] * 6, ["a", "a", "a", "b", "b", "b"], targets, probs)
    out = by_group(part, part.corpora)
    assert out["a"] == {"war": pytest.approx(2 / 3), "uar": pytest.approx((0.5 + 1.0) / 2), "n": 3}
    assert out["b"] == {"war": pytest.approx(2 / 3), "uar": pytest.approx((1.0 + 1.0 + 0.0) / 3), "n": 3}


def test_combined_run_reports_test_metrics_per_corpus(data_dir, tmp_path):
    """End to end on two small corpora with the issue's strongest recipe: resnet2d on
    features=seed, every augmentation, balanced sampling."""
    import json

    from tests.helpers.configs import FAST, compose_train
    from ser_lightning.training.pipeline import train

    overrides = ["data=combined", "data.reader_args.corpora=[savee,crema_d]", "model=resnet2d", "features=seed",
                 "augment=strong", "data.sampler=balanced", "logger=csv",
                 *[o for o in FAST if "limit_test" not in o],  # per-corpus metrics need the whole test set
                 "data.batch_size=64", "data.clip_seconds=1.0"]
    train(compose_train(overrides, tmp_path / "run", data_dir, tmp_path / "cache"))
    report = json.loads((tmp_path / "run" / "metrics.json").read_text())
    per_corpus = report["test_by_corpus"]
    assert set(per_corpus) == {"savee", "crema_d"}
    assert sum(m["n"] for m in per_corpus.values()) == report["n_test"]
    assert per_corpus["crema_d"]["n"] == 6  # one of the sample's two actors, 6 files each
    assert report["split"].startswith("speaker-per-corpus")
    # The checkpoint alone rebuilds the seed front-end and the resnet2d backbone.
    from ser_lightning.inference.predictor import Predictor

    predictor = Predictor.from_checkpoint(str(tmp_path / "run" / "checkpoints" / "best.ckpt"))
    (prediction,) = predictor.predict([str(data_dir / "savee" / "ALL" / "DC_a01.flac")])
    assert prediction.error is None and prediction.label in report["class_names"]
    assert len(report["class_names"]) == 7


def test_leave_one_corpus_out_split(combined_rows):
    rows = combined_rows
    split = make_split(rows, "corpus", val_fraction=0.15, seed=3, test_corpus="savee")
    assert split.protocol == "loco-savee"
    assert {r.corpus for r in split.test} == {"savee"} and len(split.test) == 360
    assert "savee" not in {r.corpus for r in split.train + split.val}
    # validation holds out whole speakers of the corpora with 3+ speakers only (RAVDESS here)
    train_spk, val_spk = {r.speaker for r in split.train}, {r.speaker for r in split.val}
    assert not train_spk & val_spk
    assert {r.corpus for r in split.val} == {"ravdess"} and len(val_spk) == 3
    assert {r.corpus for r in split.train} == {"tess", "ravdess", "crema_d"}
    assert len(split.train) + len(split.val) + len(split.test) == len(rows)
    # leaving RAVDESS out: SAVEE (3 speakers) is the one to validate on
    split = make_split(rows, "corpus", val_fraction=0.15, seed=3, test_corpus="ravdess")
    assert {r.corpus for r in split.val} == {"savee"} and len({r.speaker for r in split.val}) == 1
    with pytest.raises(ValueError, match="test_corpus"):
        make_split(rows, "corpus")
    with pytest.raises(ValueError, match="emodb"):
        make_split(rows, "corpus", test_corpus="emodb")
    two = [r for r in rows if r.corpus in ("tess", "savee")]
    with pytest.raises(ValueError, match="3 or more"):
        make_split(two, "corpus", test_corpus="savee")


def test_corpus_sampler_draws_each_corpus_equally(data_dir, tmp_path):
    dm = SERDataModule("combined", str(data_dir), reader_args={"corpora": ["tess", "savee", "crema_d"]}, sampler="corpus",
                       split="corpus", test_corpus="crema_d", cache_dir=str(tmp_path), batch_size=64)
    dm.setup("fit")
    rows = dm.split.train
    assert Counter(r.corpus for r in rows)["tess"] > 10 * Counter(r.corpus for r in rows)["savee"]
    torch.manual_seed(0)
    drawn = Counter(rows[i].corpus for _ in range(3) for i in iter(dm.train_dataloader().sampler))
    total = sum(drawn.values())
    assert set(drawn) == {"tess", "savee"}
    assert abs(drawn["tess"] / total - 0.5) < 0.03


def test_cross_split_with_held_out_validation_speakers(combined_rows):
    split = make_split(combined_rows, "cross", test_speakers=["savee:DC"], val_speakers=["JE"])
    assert {r.speaker for r in split.test} == {"savee:DC"} and {r.speaker for r in split.val} == {"savee:JE"}
    assert {r.speaker for r in split.train}.isdisjoint({"savee:DC", "savee:JE"})
    assert {r.corpus for r in split.train} == {"tess", "ravdess", "savee", "crema_d"}
    assert len(split.train) + len(split.val) + len(split.test) == len(combined_rows)
    with pytest.raises(ValueError, match="disjoint"):
        make_split(combined_rows, "cross", test_speakers=["savee:DC"], val_speakers=["savee:DC"])
