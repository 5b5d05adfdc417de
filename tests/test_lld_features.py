"""openSMILE low-level descriptors (``features=egemaps|compare``) as the input of the neural
models: window slicing, the per-file cache, normalisation modes, a tiny training run per
backbone family, and the scoring path (predict = the run's scores) on its checkpoint."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("opensmile")
pytest.importorskip("sklearn")

from ser_lightning.errors import ConfigError  # noqa: E402
from ser_lightning.transforms.features import FeatureConfig, FeatureExtractor  # noqa: E402
from ser_lightning.transforms.lld_windows import DescriptorMemo, centred_start, frame_of, lld_window  # noqa: E402
from tests.helpers.expert import SR, run_svm as _run_svm, tiny_corpus as _tiny_corpus, voice as _voice  # noqa: E402

CLIP = "0.5"
FAST = ["trainer=cpu", "trainer.max_epochs=1", "data.batch_size=8", "callbacks.progress_bar.refresh_rate=0",
        "augment=specaugment", f"data.clip_seconds={CLIP}", "trainer.deterministic=true", "logger=none"]


def _run(tmp_path: Path, manifest: Path, out: str, *extra: str) -> dict:
    """One training run on the tiny corpus (test speaker s3) with features=egemaps."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from ser_lightning.training.pipeline import train
    from tests.conftest import REPO

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["features=egemaps", "data=manifest", f"data.root={manifest}", "data.split=cross",
                                          "data.test_speakers=[s3]", "data.val_fraction=0.25", *FAST, *extra])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / out)
        cfg.paths.cache_dir = str(tmp_path / "waves")
        cfg.paths.feature_cache_dir = str(tmp_path / "feats")
    train(cfg)
    return json.loads((tmp_path / out / "metrics.json").read_text())  # seconds: the tiny corpus's 0.6-s files give 2 windows each at predict.py's half-window hop


def test_window_slicing_zero_fill_and_alignment():
    lld = np.arange(2 * 10, dtype=np.float32).reshape(2, 10) + 1
    np.testing.assert_array_equal(lld_window(lld, 3, 4), lld[:, 3:7])
    tail = lld_window(lld, 8, 4)  # past the last frame: zeros
    np.testing.assert_array_equal(tail[:, :2], lld[:, 8:]) and np.testing.assert_array_equal(tail[:, 2:], 0)
    head = lld_window(lld, -2, 4)  # a short file centred in zeros
    np.testing.assert_array_equal(head[:, :2], 0) and np.testing.assert_array_equal(head[:, 2:], lld[:, :2])
    assert centred_start(10, 4) == 3 and centred_start(4, 10) == -3 and centred_start(10, 10) == 0
    assert frame_of(16000, 160) == 100 and frame_of(-800, 160) == -5
    # the frames of a window starting at sample s are the whole file's descriptors from frame s // 160
    wave = np.concatenate([_voice(1.0, 120.0, seed=1), _voice(1.0, 180.0, seed=2)])
    whole = DescriptorMemo("egemaps", SR)(wave)
    assert whole.shape[0] == 25 and 190 <= whole.shape[1] <= 200
    cfg = FeatureConfig.from_dict({"kind": "egemaps", "sample_rate": SR})
    assert cfg.hop_length == 160 and cfg.n_features == 25 and cfg.n_frames(48000) == 300
    assert FeatureConfig.from_dict({"kind": "compare", "sample_rate": SR}).n_features == 65
    window = lld_window(whole, frame_of(SR, cfg.hop_length), 50)
    np.testing.assert_array_equal(window, whole[:, 100:150])
    # a higher voice in the second second: F0 (descriptor 10 of eGeMAPS v02 is F0semitoneFrom27.5Hz) is higher there
    from ser_lightning.transforms.opensmile_features import feature_names

    f0 = feature_names("egemaps", "lld").index("F0semitoneFrom27.5Hz_sma3nz")
    assert whole[f0, 120:180].mean() > whole[f0, 20:80].mean() + 5


def test_front_end_normalises_descriptor_windows():
    x = torch.randn(3, 25, 40) * 5 + 7
    out = FeatureExtractor({"kind": "egemaps", "normalize": "utterance"})(x)
    torch.testing.assert_close(out.mean(-1), torch.zeros(3, 25), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(-1), torch.ones(3, 25), atol=1e-3, rtol=0)
    torch.testing.assert_close(FeatureExtractor({"kind": "egemaps", "normalize": "none"})(x), x)
    with pytest.raises(ValueError, match=r"\[batch, 25, frames\]"):
        FeatureExtractor({"kind": "egemaps"})(torch.randn(2, 16000))  # a waveform is not descriptor windows


@pytest.mark.parametrize("backbone", ["cnn1d", "cnn2d", "resnet2d", "conformer", "ecapa"])
def test_every_backbone_takes_descriptor_windows(backbone):
    from hydra import compose, initialize_config_dir

    from ser_lightning.models.backbones import build_backbone
    from tests.conftest import REPO

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={backbone}", "features=egemaps"])
    args = dict(cfg.model.backbone)
    net = build_backbone(args.pop("name"), 25, 7, **args).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 25, 300)).shape == (2, 7)


def test_dataset_windows_and_cache_hit(tmp_path):
    from ser_lightning.data.datamodule import SERDataModule

    manifest = _tiny_corpus(tmp_path)
    kw = dict(corpus="manifest", root=str(manifest), split="cross", test_speakers=["s3"], val_fraction=0.25, clip_seconds=0.5,
              batch_size=4, cache_dir=str(tmp_path / "waves"), feature_cache_dir=str(tmp_path / "feats"),
              features={"kind": "egemaps", "normalize": "none"}, augment={"specaugment": {"p": 1.0, "freq_mask": 4, "time_mask": 5}})
    dm = SERDataModule(**kw)
    dm.setup()
    waves, targets = next(iter(dm.val_dataloader()))
    assert waves.shape == (4, 25, 50) and targets.shape == (4,)
    # validation windows are centred and deterministic; 0.6-s files: 57-58 frames, a 50-frame window from frame 3-4
    again, _ = next(iter(dm.val_dataloader()))
    torch.testing.assert_close(waves, again)
    assert (waves != 0).any(dim=1).all()  # a 0.6-s file covers the whole 0.5-s window
    # training windows: random starts, then SpecAugment masks on the descriptors (mean fill)
    train_batch = next(iter(dm.train_dataloader()))
    assert train_batch[0].shape == (4, 25, 50)
    dm2 = SERDataModule(**kw)
    from ser_lightning.data.feature_cache import load_or_extract

    dm2.setup()  # the cache holds every file now
    hit = load_or_extract([r.path for r in dm2.read_rows()], dm2._audio, "egemaps", "lld", tmp_path / "feats")
    assert hit.hits == 54 and hit.computed == 0
    torch.testing.assert_close(next(iter(dm2.val_dataloader()))[0], waves)


def test_bad_combinations_are_clear_errors(tmp_path):
    from hydra import compose, initialize_config_dir

    from ser_lightning.data.datamodule import SERDataModule
    from ser_lightning.training.config_validation import validate_config
    from tests.conftest import REPO

    with pytest.raises(ConfigError, match=r"augment\.noise.*augment=specaugment.*augment=none"):
        SERDataModule(corpus="manifest", root="x", features={"kind": "egemaps"}, augment={"noise": {"p": 0.5, "snr_db": [10, 40]}})
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["model=ssl", "features=egemaps", "data=savee", "augment=none"])
    with pytest.raises(ConfigError, match="features=waveform"):
        validate_config(cfg)


@pytest.fixture(scope="module")
def lld_runs(tmp_path_factory):
    """Tiny runs on the synthetic corpus (3 speakers, test speaker s3): cnn1d and cnn2d on
    eGeMAPS descriptors (utterance normalisation), cnn1d speaker-normalised, an SVM."""
    tmp = tmp_path_factory.mktemp("lld")
    manifest = _tiny_corpus(tmp)
    _run(tmp, manifest, "cnn1d", "model=cnn1d")
    _run(tmp, manifest, "cnn2d", "model=cnn2d")
    _run(tmp, manifest, "spk", "model=cnn1d", "features.normalize=speaker")
    _run_svm(tmp, manifest, "svm")
    return tmp


@pytest.mark.parametrize("run", ["cnn1d", "cnn2d", "spk"])
def test_tiny_training_writes_a_scored_run(lld_runs, run):
    m = json.loads((lld_runs / run / "metrics.json").read_text())
    assert m["n_test"] == 18 and sum(map(sum, m["confusion_matrix"])) == 18
    assert m["scoring"] == "windows"
    expected = {"transductive", "enrol4", "enrol8", "training"} if run == "spk" else {"utterance"}
    assert set(m["test_by_stats"]) == expected
    ckpt = torch.load(lld_runs / run / m["best_checkpoint"], map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["features"]["kind"] == "egemaps"
    if run == "spk":
        assert len(ckpt["hyper_parameters"]["feature_stats"]["mean"]) == 25


@pytest.mark.parametrize("run", ["cnn1d", "spk"])
def test_predict_on_the_checkpoint_gives_the_runs_scores(lld_runs, run):
    """predict.py's loader on the checkpoint, given the test files by path (decoded and
    described again): the run's confusion matrix; and the probabilities eval.py's scorer
    computes from the cached waves equal predict's from the files."""
    from ser_lightning.evaluation.scoring import score_utterances
    from ser_lightning.inference.loading import load_predictor
    from ser_lightning.inference.predictor import Predictor

    out = lld_runs / run
    m = json.loads((out / "metrics.json").read_text())
    predictor = load_predictor(out / m["best_checkpoint"], device="cpu", speaker_stats="inputs" if run == "spk" else "training")
    assert isinstance(predictor, Predictor) and predictor.lld
    with (out / "splits" / "test.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    paths = [r["path"] for r in rows]
    preds = predictor.predict(paths)  # spk: all inputs one speaker (s3): the transductive statistics
    n = len(m["class_names"])
    cm = np.zeros((n, n), int)
    for r, p in zip(rows, preds, strict=True):
        assert p.error is None and len(p.windows) == 2
        cm[m["class_names"].index(r["label"]), m["class_names"].index(p.label)] += 1
    headline = "transductive" if run == "spk" else "utterance"
    assert cm.tolist() == m["test_by_stats"][headline]["confusion_matrix"]
    import soundfile as sf

    waves = [sf.read(p, dtype="float32")[0] for p in paths]
    scored = score_utterances(predictor, paths, [r["speaker"] for r in rows], [m["class_names"].index(r["label"]) for r in rows],
                              lambda i: waves[i], mode=headline)
    from_files = np.array([[p.probabilities[c] for c in m["class_names"]] for p in preds])
    np.testing.assert_allclose(scored.at_temperature(predictor.temperature).probabilities, from_files, atol=1e-5)
    adapted = predictor.adapted(paths[:4])  # AdaBN on descriptor windows of 4 files
    assert adapted.adaptation["inputs"] == 4 and adapted.adaptation["windows"] == 8


def test_speaker_statistics_of_training_and_prediction_agree(lld_runs):
    """The checkpoint's training statistics (pooled descriptors of the training files) are
    what the Predictor computes from the same files' waves."""
    from ser_lightning.inference.predictor import Predictor

    out = lld_runs / "spk"
    m = json.loads((out / "metrics.json").read_text())
    predictor = Predictor.from_checkpoint(out / m["best_checkpoint"], device="cpu")
    import soundfile as sf

    with (out / "splits" / "train.csv").open() as fh:
        train = [sf.read(r["path"], dtype="float32")[0] for r in csv.DictReader(fh)]
    mean, std = predictor.statistics(train)
    torch.testing.assert_close(mean, predictor.training_stats[0], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(std, predictor.training_stats[1], rtol=1e-5, atol=1e-4)


def test_late_fusion_and_refusals_on_a_descriptor_checkpoint(lld_runs):
    from ser_lightning.inference.export import export_checkpoint
    from ser_lightning.inference.functionals import FileAverage
    from ser_lightning.inference.live import StreamingPredictor
    from ser_lightning.inference.loading import load_predictor

    cnn = lld_runs / "cnn1d" / json.loads((lld_runs / "cnn1d" / "metrics.json").read_text())["best_checkpoint"]
    svm = lld_runs / "svm" / "checkpoints" / "svm.pt"
    fused = load_predictor([cnn, svm], device="cpu")
    assert isinstance(fused, FileAverage)
    with (lld_runs / "cnn1d" / "splits" / "test.csv").open() as fh:
        path = next(csv.DictReader(fh))["path"]
    alone = [load_predictor(p, device="cpu").predict([path])[0].probabilities for p in (cnn, svm)]
    got = fused.predict([path])[0].probabilities
    np.testing.assert_allclose([got[c] for c in fused.class_names],
                               np.mean([[a[c] for c in fused.class_names] for a in alone], axis=0), atol=1e-6)
    predictor = load_predictor(cnn, device="cpu")
    with pytest.raises(ConfigError, match="openSMILE descriptors"):
        StreamingPredictor(predictor, 16000)
    with pytest.raises(ConfigError, match="openSMILE descriptors"):
        export_checkpoint(cnn, output=lld_runs / "x.onnx")
