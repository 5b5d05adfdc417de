"""Speaker-level feature normalisation: statistics, the DataModule path, the checkpoint,
prediction (speaker_stats=input/inputs/folder/training), evaluation and export."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from ser_lightning.data.datamodule import SERDataModule
from ser_lightning.inference.export import export_checkpoint, run_exported
from ser_lightning.transforms.features import FeatureExtractor
from ser_lightning.errors import CheckpointError
from ser_lightning.inference.predictor import Predictor
from ser_lightning.transforms.speaker_norm import FeatureStats, SpeakerNormalizer, recording_stats
from ser_lightning.training.pipeline import train
from tests.conftest import write_tone
from tests.helpers.configs import FAST, compose_train


def test_feature_stats_match_torch_over_all_frames_in_any_chunking():
    torch.manual_seed(0)
    parts = [torch.randn(5, n) * 3 + 7 for n in (4, 11, 1)]
    whole = torch.cat(parts, dim=1)
    one, chunked = FeatureStats(5), FeatureStats(5)
    one.update(whole)
    for p in parts:
        chunked.update(p[None])  # [1, F, T] is accepted too
    singles = []
    for p in parts:
        singles.append(FeatureStats(5))
        singles[-1].update(p)
    pooled = FeatureStats.pooled(singles, 5)
    for stats in (one, chunked, pooled):
        assert stats.count == 16
        torch.testing.assert_close(stats.mean, whole.mean(dim=1))
        torch.testing.assert_close(stats.std, whole.std(dim=1, unbiased=False))
    with pytest.raises(ValueError, match=r"\[5, frames\]"):
        one.update(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="no frames"):
        _ = FeatureStats(5).mean


def test_speaker_normalizer_uses_each_rows_own_speaker():
    mean = torch.tensor([[1.0, 2.0], [10.0, 20.0]])
    std = torch.tensor([[1.0, 2.0], [5.0, 10.0]])
    norm = SpeakerNormalizer(mean, std)
    feats = torch.tensor([[[1.0, 3.0], [2.0, 6.0]], [[10.0, 15.0], [20.0, 30.0]]])  # [2, F=2, T=2]
    out = norm(feats, torch.tensor([0, 1]))
    torch.testing.assert_close(out, torch.tensor([[[0.0, 2.0], [0.0, 2.0]], [[0.0, 1.0], [0.0, 1.0]]]))
    # the same frames under the other speaker's statistics give another result
    assert not torch.allclose(norm(feats, torch.tensor([1, 0])), out)
    with pytest.raises(IndexError, match="out of range"):
        norm(feats, torch.tensor([0, 2]))


def _two_speaker_corpus(root):
    """Speaker a: 6 tones at amplitude 0.3 and 6 at 0.03 (loud and quiet takes);
    speaker b: the same 12 tones, all 10x louder than a's (another recording level)."""
    root.mkdir(parents=True)
    lines = ["path,label,speaker"]
    for spk, scale in (("a", 1.0), ("b", 10.0)):
        for i in range(12):
            quiet = i >= 6
            t = np.arange(8000) / 16000
            wave = (0.03 if quiet else 0.3) * scale * 0.09 * np.sin(2 * np.pi * (150 + 30 * (i % 6)) * t)
            sf.write(root / f"{spk}{i}.wav", wave.astype(np.float32), 16000, subtype="FLOAT")  # no 16-bit quantisation floor
            lines.append(f"{spk}{i}.wav,{'sad' if quiet else 'angry'},{spk}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"


def _dm(manifest, tmp_path, normalize):
    return SERDataModule(corpus="manifest", root=str(manifest), split="random", clip_seconds=0.5, batch_size=24,
                         cache_dir=None, output_dir=str(tmp_path / "run"), features={"kind": "logmel", "normalize": normalize},
                         augment={})


def test_datamodule_speaker_normalisation_keeps_level_within_a_speaker_and_removes_it_between(tmp_path):
    manifest = _two_speaker_corpus(tmp_path / "c")
    dm = _dm(manifest, tmp_path, "speaker")
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert len(batch) == 3 and batch[2].dtype == torch.long  # waves, targets, speakers
    assert dm.speaker_norm.mean.shape == (2, 64) and dm.training_stats.count > 0
    # every clip of the corpus (all three parts), through the evaluation path
    feats, names = [], []
    for part in ("train", "val", "test"):
        dataset = dm._datasets[part]
        waves, _, speakers = dataset.__getitems__(list(range(len(dataset))))
        feats.append(dm.transform_batch(waves, training=False, speakers=speakers))
        names += [row.path.rsplit("/", 1)[1] for row in getattr(dm.split, part)]
    level = torch.cat(feats).mean(dim=(1, 2))
    speaker_b = np.array([n.startswith("b") for n in names])
    loud = np.array([int(n[1:].split(".")[0]) < 6 for n in names])
    # within a speaker the loud takes stay louder than the quiet ones ...
    for b in (False, True):
        sel = speaker_b == b
        assert level[torch.from_numpy(sel & loud)].mean() > level[torch.from_numpy(sel & ~loud)].mean() + 0.5
    # ... while speaker b's 10x recording level is removed: same tones, same features
    a_loud = level[torch.from_numpy(~speaker_b & loud)].mean()
    b_loud = level[torch.from_numpy(speaker_b & loud)].mean()
    assert abs(float(a_loud - b_loud)) < 0.05
    with pytest.raises(ValueError, match="speaker indices"):
        dm.transform_batch(waves, training=False)


def test_utterance_normalisation_removes_the_level_the_speaker_mode_keeps(tmp_path):
    manifest = _two_speaker_corpus(tmp_path / "c")
    dm = _dm(manifest, tmp_path, "utterance")
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert len(batch) == 2 and dm.speaker_norm is None
    level = dm.transform_batch(batch[0], training=False).mean(dim=(1, 2))
    assert level.abs().max() < 1e-4  # every utterance at zero mean: loud and quiet takes alike


def _speaker_checkpoint(tmp_path, data_dir, cache_dir):
    cfg = compose_train(["data=savee", "model=cnn1d", "features=mfcc", "features.normalize=speaker", "logger=none", *FAST],
                        tmp_path, data_dir, cache_dir)
    metrics = train(cfg)
    return tmp_path / "checkpoints" / "best.ckpt", metrics


@pytest.fixture(scope="module")
def speaker_run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("spk_run")
    return _speaker_checkpoint(out, data_dir, tmp_path_factory.mktemp("cache"))


def test_training_with_speaker_normalisation_stores_the_training_statistics(speaker_run):
    ckpt, metrics = speaker_run
    hp = torch.load(ckpt, weights_only=True)["hyper_parameters"]
    assert hp["features"]["normalize"] == "speaker"
    assert len(hp["feature_stats"]["mean"]) == len(hp["feature_stats"]["std"]) == 40
    assert all(s > 0 for s in hp["feature_stats"]["std"])
    assert 0.0 <= metrics["test/uar"] <= 1.0


def test_prediction_takes_the_statistics_that_speaker_stats_names(speaker_run, data_dir, tmp_path):
    ckpt, _ = speaker_run
    files = sorted((data_dir / "savee" / "ALL").glob("JK_*.flac"))[:6]
    wave, sr = sf.read(files[0], dtype="float32")
    quiet = tmp_path / "one" / "quiet.wav"
    quiet.parent.mkdir()
    sf.write(quiet, wave * 0.1, sr, subtype="FLOAT")  # no 16-bit quantisation floor
    # input: the file's own statistics, so a file-wide gain changes nothing
    own = Predictor.from_checkpoint(ckpt, device="cpu", speaker_stats="input")
    a, b = own.predict([files[0], quiet])
    assert a.probabilities == pytest.approx(b.probabilities, abs=1e-4)
    # training: the pooled statistics, so the 20 dB quieter copy is classified differently
    pooled = Predictor.from_checkpoint(ckpt, device="cpu", speaker_stats="training")
    a, b = pooled.predict([files[0], quiet])
    assert a.probabilities != pytest.approx(b.probabilities, abs=1e-4)
    # inputs: one speaker over all inputs, so the other inputs change this one's result
    together = Predictor.from_checkpoint(ckpt, device="cpu", speaker_stats="inputs")
    alone, = together.predict([files[0]])
    with_others = together.predict(files)[0]
    assert alone.probabilities != pytest.approx(with_others.probabilities, abs=1e-4)
    # folder: one speaker per folder; equal to "inputs" when the folder is the only one
    by_folder = Predictor.from_checkpoint(ckpt, device="cpu", speaker_stats="folder")
    assert by_folder.predict(files)[0].probabilities == pytest.approx(with_others.probabilities, abs=1e-5)
    mixed = by_folder.predict([*files, quiet])
    assert mixed[0].probabilities == pytest.approx(with_others.probabilities, abs=1e-5)
    assert mixed[-1].probabilities == pytest.approx(own.predict([quiet])[0].probabilities, abs=1e-5)
    # a bad input in the group is reported and does not disturb the others
    bad = tmp_path / "one" / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEfmt")
    res = Predictor.from_checkpoint(ckpt, device="cpu", speaker_stats="inputs").predict([*files, bad])
    assert res[-1].error and "cannot decode" in res[-1].error
    assert res[0].probabilities == pytest.approx(with_others.probabilities, abs=1e-5)
    with pytest.raises(ValueError, match="speaker_stats='nope'"):
        Predictor.from_checkpoint(ckpt, device="cpu", speaker_stats="nope")


def test_speaker_checkpoint_without_statistics_is_refused_and_export_builds_them_in(speaker_run, tmp_path):
    ckpt, _ = speaker_run
    raw = torch.load(ckpt, weights_only=True)
    del raw["hyper_parameters"]["feature_stats"]
    broken = tmp_path / "no_stats.ckpt"
    torch.save(raw, broken)
    with pytest.raises(CheckpointError, match="feature_stats"):
        Predictor.from_checkpoint(broken, device="cpu")
    with pytest.raises(CheckpointError, match="feature_stats"):
        export_checkpoint(broken, format="torchscript", output=tmp_path / "broken.pt")
    # the training statistics are part of the exported graph: it equals speaker_stats=training
    result = export_checkpoint(ckpt, format="torchscript", output=tmp_path / "m.pt")
    predictor = Predictor.from_checkpoint(ckpt, device="cpu", speaker_stats="training")
    waves = np.random.default_rng(0).uniform(-0.3, 0.3, size=(3, predictor.clip_samples)).astype(np.float32)
    np.testing.assert_allclose(run_exported(result.path, "torchscript", waves), predictor.probabilities(waves), atol=1e-4)
    assert "training" in result.metadata["speaker_stats"]


def test_evaluation_normalises_each_speaker_with_its_own_statistics(speaker_run, data_dir, tmp_path):
    from ser_lightning.evaluation.evaluate import evaluate_checkpoint

    ckpt, _ = speaker_run
    report = evaluate_checkpoint(ckpt, {"corpus": "savee", "root": str(data_dir / "savee"), "split": "loso"}, part="all",
                                 output_dir=tmp_path, test_stats="transductive")
    assert report["n_evaluated"] == 360 and 0.0 <= report["eval/uar"] <= 1.0
    # the first DC file by hand, normalised with the statistics of all DC files
    predictor = Predictor.from_checkpoint(ckpt, device="cpu")
    rows = json.loads((tmp_path / "metrics.json").read_text())
    assert rows["corpus"] == "savee"
    files = sorted((data_dir / "savee" / "ALL").glob("DC_*.flac"))
    stats = predictor.statistics(sf.read(f, dtype="float32")[0] for f in files)
    with (tmp_path / "predictions.csv").open() as fh:
        predicted = {r["path"]: r for r in csv.DictReader(fh)}
    wave = sf.read(files[0], dtype="float32")[0]
    probs = predictor.probabilities(predictor.windows(wave), stats).mean(axis=0)
    assert predictor.class_names[int(np.argmax(probs))] == predicted[str(files[0])]["predicted"]
    assert float(probs.max()) == pytest.approx(float(predicted[str(files[0])]["probability"]), abs=1e-4)


def test_recording_stats_of_a_long_file_in_pieces_are_close_to_one_pass(tmp_path):
    path = write_tone(tmp_path / "t.wav", seconds=5.0, freq=300)
    wave = sf.read(path, dtype="float32")[0]
    extract = FeatureExtractor({"kind": "logmel", "normalize": "none"})
    whole = recording_stats(extract, [wave], 64, chunk_samples=len(wave))
    pieces = recording_stats(extract, [wave], 64, chunk_samples=16000)
    assert pieces.count == whole.count + 4  # one extra frame per extra piece (centred frames)
    torch.testing.assert_close(pieces.mean, whole.mean, atol=1.0, rtol=0.0)  # dB; 4 boundary frames of 505 differ


def test_speaker_independent_experiment_composes_the_documented_recipe(data_dir, tmp_path):
    cfg = compose_train(["experiment=speaker_independent", "data=savee"], tmp_path, data_dir, tmp_path / "cache")
    assert (cfg.model.backbone.name, cfg.features.kind, cfg.features.normalize) == ("cnn1d", "mfcc", "speaker")
    assert list(cfg.model.backbone.channels) == [96, 192, 384]
    assert cfg.augment.speed.p > 0 and cfg.augment.mixup.p > 0
    assert (cfg.trainer.max_epochs, cfg.callbacks.early_stopping.patience) == (160, 50)
    assert cfg.data.corpus == "savee"  # the data group stays the user's choice


def test_predict_cli_passes_speaker_stats(speaker_run, data_dir, tmp_path, capsys):
    from ser_lightning.cli.predict import run_predict
    from tests.helpers.configs import compose_predict

    ckpt, _ = speaker_run
    pattern = f"{data_dir}/savee/ALL/DC_a0*.flac"
    files = sorted((data_dir / "savee" / "ALL").glob("DC_a0*.flac"))
    expected = Predictor.from_checkpoint(ckpt, device="cpu", speaker_stats="inputs").predict(files)
    assert run_predict(compose_predict(f"ckpt_path={ckpt}", f"input={pattern}", "speaker_stats=inputs",
                                       f"output={tmp_path / 'p.csv'}")) == 0
    with (tmp_path / "p.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["label"] for r in rows] == [p.label for p in expected]
    assert [float(r["confidence"]) for r in rows] == pytest.approx([p.confidence for p in expected], abs=1e-5)
    assert run_predict(compose_predict(f"ckpt_path={ckpt}", f"input={pattern}", "speaker_stats=speakerwise")) == 2
    assert "speaker_stats='speakerwise'" in capsys.readouterr().err


def test_enrolment_recordings_give_the_speaker_statistics(speaker_run, data_dir, tmp_path, capsys):
    from ser_lightning.cli.predict import run_predict
    from tests.helpers.configs import compose_predict

    ckpt, _ = speaker_run
    enrol = sorted((data_dir / "savee" / "ALL").glob("JK_n0*.flac"))[:8]
    target = sorted((data_dir / "savee" / "ALL").glob("JK_a0*.flac"))[:3]
    predictor = Predictor.from_checkpoint(ckpt, device="cpu", speaker_stats="enrol")
    with pytest.raises(ValueError, match="enrolment recordings first"):
        predictor.predict(target)
    assert predictor.enrol([*enrol, tmp_path / "missing.wav"]) and predictor.enrolment_stats is not None  # the missing one is reported
    stats = predictor.statistics(sf.read(f, dtype="float32")[0] for f in enrol)
    for got, want in zip(predictor.enrolment_stats, stats, strict=True):
        torch.testing.assert_close(got, want)
    enrolled = predictor.predict(target)
    by_hand = Predictor.from_checkpoint(ckpt, device="cpu").predict(target, stats=[stats] * len(target))
    assert [p.probabilities for p in enrolled] == [pytest.approx(p.probabilities, abs=1e-6) for p in by_hand]
    # predict.py: enrol= switches the default (auto) to the enrolment statistics
    folder = tmp_path / "enrol"
    folder.mkdir()
    for f in enrol:
        (folder / f.name).symlink_to(f)
    out = tmp_path / "p.csv"
    assert run_predict(compose_predict(f"ckpt_path={ckpt}", f"input={target[0]}", f"enrol={folder}", f"output={out}")) == 0
    with out.open() as fh:
        (row,) = list(csv.DictReader(fh))
    assert float(row["confidence"]) == pytest.approx(enrolled[0].confidence, abs=1e-5)
    assert "8 enrolment recording(s)" in capsys.readouterr().err
    # without enrol=, the default is the training statistics
    assert run_predict(compose_predict(f"ckpt_path={ckpt}", f"input={target[0]}", f"output={out}")) == 0
    with out.open() as fh:
        (row,) = list(csv.DictReader(fh))
    pooled = Predictor.from_checkpoint(ckpt, device="cpu", speaker_stats="training").predict([target[0]])[0]
    assert float(row["confidence"]) == pytest.approx(pooled.confidence, abs=1e-5)
    assert run_predict(compose_predict(f"ckpt_path={ckpt}", f"input={target[0]}", f"enrol={folder}", "speaker_stats=input")) == 2
    assert "speaker_stats=enrol" in capsys.readouterr().err


def test_folder_statistics_refuse_folders_named_after_emotions(speaker_run, data_dir, capsys):
    from ser_lightning.cli.predict import run_predict
    from ser_lightning.errors import SpeakerGroupingError
    from tests.helpers.configs import compose_predict

    ckpt, _ = speaker_run
    tess = sorted((data_dir / "tess").glob("*_*/*.flac"))[:1] + sorted((data_dir / "tess").glob("YAF_*/*.flac"))[:1]
    with pytest.raises(SpeakerGroupingError, match="named after an emotion"):
        Predictor.from_checkpoint(ckpt, device="cpu", speaker_stats="folder").predict(tess)
    assert run_predict(compose_predict(f"ckpt_path={ckpt}", f"input={tess[0]}", "speaker_stats=folder")) == 2
    assert "named after an emotion" in capsys.readouterr().err


def test_streaming_takes_the_enrolment_statistics(speaker_run, data_dir):
    from ser_lightning.inference.live import StreamingPredictor, WindowResult

    ckpt, _ = speaker_run
    enrol = sorted((data_dir / "savee" / "ALL").glob("JK_n0*.flac"))[:8]
    files = sorted((data_dir / "savee" / "ALL").glob("JK_a0*.flac"))[:3]
    wave = np.concatenate([sf.read(f, dtype="float32")[0] for f in files])  # one 8-s "stream" of the speaker
    predictor = Predictor.from_checkpoint(ckpt, device="cpu", speaker_stats="enrol")
    predictor.enrol(enrol)
    live = StreamingPredictor(predictor, 16000, vad=None)
    windows = [e for e in [*live.push(wave[:20000]), *live.push(wave[20000:]), *live.finish()] if isinstance(e, WindowResult)]
    expected = predictor.predict([(wave, 16000)])[0].windows
    assert len(windows) == len(expected) > 1
    for got, want in zip(windows, expected, strict=True):
        assert got.probabilities == pytest.approx(want.probabilities, abs=1e-5)
    pooled = Predictor.from_checkpoint(ckpt, device="cpu").predict([(wave, 16000)])[0].windows
    assert any(w.probabilities != pytest.approx(p.probabilities, abs=1e-4) for w, p in zip(windows, pooled, strict=True))
