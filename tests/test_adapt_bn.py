"""AdaBN test-time adaptation (adapt=bn): BatchNorm statistics re-estimated on enrolment
recordings, through the one scoring path (Predictor.adapted, score_utterances, eval.py,
predict.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from ser_lightning.cli.predict import run_predict
from ser_lightning.data.audio import load_audio
from ser_lightning.errors import ConfigError
from ser_lightning.evaluation.evaluate import evaluate_checkpoint
from ser_lightning.evaluation.scoring import score_utterances
from ser_lightning.inference.predictor import Predictor
from ser_lightning.models.backbones import build_backbone
from ser_lightning.transforms.features import FeatureConfig, FeatureExtractor
from tests.conftest import FIELD_BACKBONES
from tests.helpers.checkpoints import CLASSES
from tests.helpers.configs import compose_predict

# RAVDESS codes of the tiny TESS model's classes (neutral, happy, sad, angry)
RAVDESS_CODES = ("01", "03", "04", "05")


@pytest.fixture(scope="module")
def mini_ravdess(tmp_path_factory, data_dir):
    """24 RAVDESS files (2 actors x neutral, happy, sad, angry x 3) linked into a folder:
    another corpus than the model's (TESS), i.e. a domain shift to adapt to."""
    root = tmp_path_factory.mktemp("mini") / "ravdess"
    for actor in ("01", "02"):
        (root / f"Actor_{actor}").mkdir(parents=True)
        for emotion in RAVDESS_CODES:
            for src in sorted((data_dir / "ravdess" / f"Actor_{actor}").glob(f"03-01-{emotion}-*"))[:3]:
                (root / f"Actor_{actor}" / src.name).symlink_to(src)
    return root


@pytest.fixture(scope="module")
def enrolment(mini_ravdess) -> list[Path]:
    return sorted((mini_ravdess / "Actor_01").glob("*.flac"))[::4]


def _norm_inputs(model: torch.nn.Module, feats: torch.Tensor) -> dict[torch.nn.Module, torch.Tensor]:
    """The input of every BatchNorm layer of ``model`` (eval mode) on ``feats``."""
    seen: dict[torch.nn.Module, torch.Tensor] = {}
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    hooks = [m.register_forward_pre_hook(lambda mod, args: seen.setdefault(mod, args[0].detach().clone())) for m in norms]
    with torch.no_grad():
        model.eval()(feats)
    for h in hooks:
        h.remove()
    return seen


def _channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.transpose(0, 1).reshape(x.shape[1], -1).double()
    return flat.mean(dim=1), flat.var(dim=1, unbiased=False)


def _windows(predictor: Predictor, files) -> np.ndarray:
    return np.concatenate([predictor.windows(load_audio(f, predictor.sample_rate)) for f in files])


@pytest.mark.parametrize("name", ["cnn2d", *sorted(FIELD_BACKBONES)])
def test_statistics_are_those_of_the_enrolment_windows(name, backbone_ckpt, enrolment):
    predictor = Predictor.from_checkpoint(backbone_ckpt(name), device="cpu", silence_dbfs=None)
    adapted = predictor.adapted(enrolment, batch_size=5)
    assert adapted.adaptation["inputs"] == len(enrolment) and adapted.adaptation["left_out"] == []
    windows = _windows(predictor, enrolment)
    assert adapted.adaptation["windows"] == len(windows)
    feats = predictor.features(torch.from_numpy(windows))
    # the first layer, by hand: its input does not depend on any adaptation
    first_before = next(m for m in predictor.unfolded_model.modules() if isinstance(m, _BatchNorm))
    first_after = next(m for m in adapted.unfolded_model.modules() if isinstance(m, _BatchNorm))
    mean, var = _channel_stats(_norm_inputs(predictor.unfolded_model, feats)[first_before])
    torch.testing.assert_close(first_after.running_mean.double(), mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(first_after.running_var.double(), var, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(first_before.running_mean, first_after.running_mean, rtol=0.05, atol=0)
    # every layer: the mean / variance of its inputs with the earlier layers adapted (AdaBN's fixed point)
    for layer, x in _norm_inputs(adapted.unfolded_model, feats).items():
        mean, var = _channel_stats(x)
        torch.testing.assert_close(layer.running_mean.double(), mean, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(layer.running_var.double(), var, rtol=1e-4, atol=1e-4)
    # the scoring model (BatchNorm folded) is the adapted one
    with torch.no_grad():
        expected = adapted.unfolded_model(feats).numpy()
    np.testing.assert_allclose(adapted.logits(windows), expected, rtol=1e-4, atol=1e-4)
    # independent of the batch size
    other = predictor.adapted(enrolment, batch_size=32)
    for a, b in zip(adapted.unfolded_model.state_dict().values(), other.unfolded_model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_the_original_predictor_is_left_unchanged(predictor, enrolment, mini_ravdess):
    probe = sorted((mini_ravdess / "Actor_02").glob("*.flac"))[:3]
    before = [p.probabilities for p in predictor.predict(probe)]
    buffers = {k: v.clone() for k, v in predictor.unfolded_model.state_dict().items()}
    adapted = predictor.adapted(enrolment)
    after = [p.probabilities for p in predictor.predict(probe)]
    assert before == after and predictor.adaptation is None
    assert all(torch.equal(v, predictor.unfolded_model.state_dict()[k]) for k, v in buffers.items())
    moved = [p.probabilities for p in adapted.predict(probe)]
    assert any(abs(m[c] - b[c]) > 1e-3 for m, b in zip(moved, before, strict=True) for c in CLASSES)


def test_no_window_to_adapt_on_is_refused(predictor):
    with pytest.raises(ConfigError, match="no window"):
        predictor.adapted([])
    with pytest.raises(ConfigError, match="silent throughout"):
        predictor.adapted([(np.zeros(48000, np.float32), predictor.sample_rate)])


def test_a_model_without_batchnorm_is_refused(enrolment):
    """conformer with conv_norm=group has no BatchNorm: adapt=bn is an error, not a silent no-op."""
    config = FeatureConfig(kind="logmel")
    model = build_backbone("conformer", config.n_features, len(CLASSES), d_model=16, num_heads=2, ffn_dim=32, num_layers=1,
                           conv_norm="group")
    with pytest.raises(ConfigError, match="no BatchNorm layer"):
        Predictor(model, FeatureExtractor(config), CLASSES, 3.0).adapted(enrolment)


def test_an_ensemble_adapts_every_member(ckpt, enrolment):
    single = Predictor.from_checkpoint(ckpt, device="cpu").adapted(enrolment)
    pair = Predictor.from_checkpoint([ckpt, ckpt], device="cpu").adapted(enrolment)
    reference = [m for m in single.unfolded_model.modules() if isinstance(m, _BatchNorm)]
    for member in pair.unfolded_model.members:  # identical members: each gets the single model's statistics
        for ref, layer in zip(reference, [m for m in member.modules() if isinstance(m, _BatchNorm)], strict=True):
            torch.testing.assert_close(layer.running_mean, ref.running_mean, rtol=1e-5, atol=1e-5)


def _speaker_normalized_predictor() -> Predictor:
    torch.manual_seed(0)
    config = FeatureConfig(kind="logmel", normalize="speaker")
    model = build_backbone("cnn2d", config.n_features, len(CLASSES), channels=[4, 8])
    return Predictor(model, FeatureExtractor(config), CLASSES, 3.0, training_stats=(torch.zeros(config.n_features), torch.ones(config.n_features)))


def test_speaker_normalised_windows_are_normalised_before_adaptation(enrolment):
    predictor = _speaker_normalized_predictor()
    stats = predictor.statistics(load_audio(f, predictor.sample_rate) for f in enrolment)
    adapted = predictor.adapted(enrolment, stats=[stats] * len(enrolment))
    feats = predictor.features(torch.from_numpy(_windows(predictor, enrolment)))
    feats = (feats - stats[0][:, None]) / stats[1][:, None]
    first = next(m for m in adapted.unfolded_model.modules() if isinstance(m, _BatchNorm))
    x = _norm_inputs(predictor.unfolded_model, feats)[next(m for m in predictor.unfolded_model.modules() if isinstance(m, _BatchNorm))]
    mean, var = _channel_stats(x)
    torch.testing.assert_close(first.running_mean.double(), mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(first.running_var.double(), var, rtol=1e-5, atol=1e-5)


def _part(mini_ravdess):
    files = sorted(mini_ravdess.rglob("*.flac"))
    speakers = [f.parent.name for f in files]
    targets = [RAVDESS_CODES.index(f.name.split("-")[2]) for f in files]
    return [str(f) for f in files], speakers, targets


def test_scoring_modes_and_adaptation(predictor, mini_ravdess):
    paths, speakers, targets = _part(mini_ravdess)
    rate = predictor.sample_rate
    waves = {i: load_audio(p, rate) for i, p in enumerate(paths)}
    for model, mode in [(_speaker_normalized_predictor(), "transductive"), (_speaker_normalized_predictor(), "training"),
                        (predictor, "utterance")]:  # would adapt on the scored clips themselves, or on nothing
        with pytest.raises(ConfigError, match="only an enrol<k> mode draws"):
            score_utterances(model, paths, speakers, targets, waves.__getitem__, mode, adapt="bn")
    plain = score_utterances(predictor, paths, speakers, targets, waves.__getitem__, "enrol2")  # the draw alone
    adapted = score_utterances(predictor, paths, speakers, targets, waves.__getitem__, "enrol2", adapt="bn")
    pooled = score_utterances(predictor, paths, speakers, targets, waves.__getitem__, "enrol2", adapt="bn", adapt_scope="corpus")
    assert adapted.mode == "enrol2+bn" and plain.mode == "enrol2"
    named = score_utterances(predictor, paths, speakers, targets, waves.__getitem__, "enrol2+bn")  # the mode adapted_modes names
    assert named.mode == "enrol2+bn" and named.paths == adapted.paths
    np.testing.assert_allclose(named.probabilities, adapted.probabilities, atol=1e-6)
    assert plain.paths == adapted.paths == pooled.paths and len(plain.paths) == len(paths) - 4
    assert plain.enrolled == adapted.enrolled and not set(adapted.paths) & {p for v in adapted.enrolled.values() for p in v}
    assert not np.allclose(plain.probabilities, adapted.probabilities, atol=1e-3)
    assert not np.allclose(pooled.probabilities, adapted.probabilities, atol=1e-3)
    # per speaker: the same as adapting on that speaker's enrolment recordings by hand
    s = "Actor_02"
    by_hand = predictor.adapted(adapted.enrolled[s]).predict([p for p, sp in zip(adapted.paths, adapted.speakers, strict=True) if sp == s])
    rows = [j for j, sp in enumerate(adapted.speakers) if sp == s]
    np.testing.assert_allclose(adapted.probabilities[rows], [[p.probabilities[c] for c in CLASSES] for p in by_hand], atol=1e-5)


def test_eval_reports_adapted_and_unadapted_scores(ckpt, mini_ravdess, tmp_path):
    data = {"corpus": "ravdess", "root": str(mini_ravdess), "cache_dir": None}
    with pytest.raises(ConfigError, match="enrol<k>"):
        evaluate_checkpoint(ckpt, data, device="cpu", report_stats=["training"], adapt="bn")
    report = evaluate_checkpoint(ckpt, data, device="cpu", report_stats=["enrol2"], test_stats="enrol2", adapt="bn",
                                 output_dir=tmp_path)
    by_stats = report["eval_by_stats"]
    assert set(by_stats) == {"utterance", "enrol2", "enrol2+bn"} and report["test_stats"] == "enrol2+bn"
    assert report["adapt"] == "bn" and report["adapt_scope"] == "speaker"
    assert report["eval/uar"] == by_stats["enrol2+bn"]["uar"] and by_stats["utterance"]["n"] == 24
    assert by_stats["enrol2"]["n"] == by_stats["enrol2+bn"]["n"] == 20
    assert by_stats["enrol2+bn"]["enrolled_per_speaker"] == {"ravdess:01": 2, "ravdess:02": 2}
    with (tmp_path / "predictions.csv").open() as fh:
        scored = {r["path"] for r in csv.DictReader(fh)}
    left_out = [f for f in mini_ravdess.rglob("*.flac") if str(f) not in scored]  # the enrolment recordings
    assert len(scored) == 20 and sorted(f.parent.name for f in left_out) == ["Actor_01", "Actor_01", "Actor_02", "Actor_02"]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["eval_by_stats"]["enrol2"]["confusion_matrix"] == by_stats["enrol2"]["confusion_matrix"]


def test_predict_cli_adapt_bn_needs_enrol_and_matches_scoring(ckpt, mini_ravdess, tmp_path, capsys):
    assert run_predict(compose_predict(f"ckpt_path={ckpt}", f"input={mini_ravdess}/Actor_01", "adapt=bn")) == 2
    assert "enrol=" in capsys.readouterr().err
    paths, speakers, targets = _part(mini_ravdess)
    predictor = Predictor.from_checkpoint(ckpt, device="cpu")
    part = score_utterances(predictor, paths, speakers, targets, lambda i: load_audio(paths[i], predictor.sample_rate),
                            "enrol2", adapt="bn")
    s = "Actor_01"
    enrol = tmp_path / "enrol"
    enrol.mkdir()
    for p in part.enrolled[s]:
        (enrol / Path(p).name).symlink_to(p)
    out = tmp_path / "preds.json"
    assert run_predict(compose_predict(f"ckpt_path={ckpt}", f"input={mini_ravdess}/{s}", f"enrol={enrol}", "adapt=bn",
                                       "device=cpu", f"output={out}")) == 0
    err = capsys.readouterr().err
    assert "adapt=bn: BatchNorm statistics re-estimated" in err
    assert "2 input(s) are also enrolment recordings" in err  # input= holds the enrolment files too: said, not hidden
    cli = {Path(r["path"]).name: r for r in json.loads(out.read_text())}
    rows = [j for j, sp in enumerate(part.speakers) if sp == s]
    assert rows
    for j in rows:
        np.testing.assert_allclose([cli[Path(part.paths[j]).name][c] for c in CLASSES], part.probabilities[j], atol=1e-5)


def test_stream_cli_adapt_bn(ckpt, mini_ravdess, enrolment, tmp_path, capsys):
    from hydra import compose, initialize_config_dir

    from ser_lightning.cli.stream import run_stream
    from tests.conftest import REPO

    def stream(*overrides: str) -> int:
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            return run_stream(compose("stream", overrides=[f"ckpt_path={ckpt}", "realtime=false", "vad=none", *overrides]))

    source = sorted((mini_ravdess / "Actor_01").glob("*.flac"))[1]
    assert stream(f"source={source}", "adapt=bn") == 2
    assert "enrol=" in capsys.readouterr().err
    timeline = tmp_path / "timeline.json"
    folder = tmp_path / "enrol"
    folder.mkdir()
    for f in enrolment:
        (folder / f.name).symlink_to(f)
    assert stream(f"source={source}", "adapt=bn", f"enrol={folder}", f"timeline={timeline}") == 0
    assert "re-estimated on" in capsys.readouterr().err
    rows = json.loads(timeline.read_text())
    adapted = Predictor.from_checkpoint(ckpt, device="cpu").adapted(enrolment)
    expected = adapted.predict(source)[0].windows
    assert len(rows) == len(expected)
    for row, window in zip(rows, expected, strict=True):
        np.testing.assert_allclose([row[c] for c in CLASSES], [window.probabilities[c] for c in CLASSES], atol=1e-5)
