"""openSMILE eGeMAPS / ComParE features, their per-file cache, and the SVM baseline
(``train.py model=svm``) end to end on a tiny synthetic corpus."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytest.importorskip("opensmile")
pytest.importorskip("sklearn")

from ser_lightning.data.cache import load_or_decode  # noqa: E402
from ser_lightning.data.feature_cache import _entry, feature_key, load_or_extract  # noqa: E402
from ser_lightning.errors import AudioDecodeError, ConfigError  # noqa: E402
from ser_lightning.transforms.opensmile_features import extract, feature_names  # noqa: E402
from tests.conftest import write_tone  # noqa: E402
from tests.helpers.expert import assert_fusion_is_member_mean, SR, confusion_on_test_part, run_svm as _run_svm, tiny_corpus as _tiny_corpus, voice as _voice  # noqa: E402


@pytest.mark.parametrize("name, n_func, n_lld", [("egemaps", 88, 25), ("compare", 6373, 65)])
def test_shapes_of_functionals_and_descriptors(name, n_func, n_lld):
    wave = _voice(1.0)
    func = extract(wave, SR, name, "functionals")
    lld = extract(wave, SR, name, "lld")
    assert func.shape == (n_func,) and func.dtype == np.float32 and np.all(np.isfinite(func))
    assert len(feature_names(name)) == n_func
    assert lld.shape[0] == n_lld and 90 <= lld.shape[1] <= 100  # 10 ms frames of 1 s
    # the functionals describe the signal: a higher voice has a higher mean F0 (eGeMAPS' first feature, in semitones)
    if name == "egemaps":
        assert feature_names(name)[0].startswith("F0semitone")
        assert extract(_voice(1.0, f0=220.0), SR, name)[0] > func[0] + 5


def test_bad_signals_are_clear_errors():
    with pytest.raises(AudioDecodeError, match="non-empty mono"):
        extract(np.zeros(0, np.float32), SR, "egemaps")
    with pytest.raises(AudioDecodeError, match="NaN or infinite"):
        extract(np.full(SR, np.nan, np.float32), SR, "egemaps")
    with pytest.raises(ConfigError, match="allowed"):
        extract(_voice(), SR, "gemaps")


def test_cache_hit_invalidation_damage_and_undecodable_file(tmp_path):
    good = [write_tone(tmp_path / f"a{i}.wav", seconds=0.8, freq=150 + 40 * i) for i in range(3)]
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt not really audio")
    paths = [str(p) for p in [*good, bad]]
    audio = load_or_decode(paths, SR, tmp_path / "waves")
    cache = tmp_path / "feats"

    first = load_or_extract(paths, audio, "egemaps", cache_dir=cache)
    assert first.computed == 3 and first.hits == 0
    assert str(bad) in first.errors and np.isnan(first.values[3]).all()  # skipped with its reason, never a zero row
    assert np.isfinite(first.values[:3]).all() and first.values.shape == (4, 88)

    second = load_or_extract(paths, audio, "egemaps", cache_dir=cache)
    assert second.hits == 3 and second.computed == 0
    np.testing.assert_array_equal(second.values[:3], first.values[:3])

    # a damaged entry is computed again, not trusted
    entry = _entry(cache, "egemaps", "functionals", feature_key(paths[0], SR, "egemaps", "functionals"))
    entry.write_bytes(b"garbage")
    third = load_or_extract(paths, audio, "egemaps", cache_dir=cache)
    assert third.computed == 1 and third.hits == 2
    np.testing.assert_allclose(third.values[0], first.values[0])

    # a changed file (new size / mtime) gets a new key: its features are computed from its new wave
    write_tone(good[1], seconds=0.8, freq=400)
    os.utime(good[1], ns=(1, 1))
    audio = load_or_decode(paths, SR, tmp_path / "waves")
    fourth = load_or_extract(paths, audio, "egemaps", cache_dir=cache)
    assert fourth.computed == 1 and not np.allclose(fourth.values[1], first.values[1])
    # other settings (set, trim) are other entries
    assert feature_key(paths[0], SR, "egemaps", "functionals") != feature_key(paths[0], SR, "egemaps", "functionals", trim="vad")
    assert feature_key(paths[0], SR, "egemaps", "functionals") != feature_key(paths[0], SR, "compare", "functionals")


@pytest.fixture(scope="module")
def svm_runs(tmp_path_factory):
    """Two SVM runs on the tiny corpus (same split): training-part and per-speaker standardisation."""
    tmp = tmp_path_factory.mktemp("svm")
    manifest = _tiny_corpus(tmp)
    _run_svm(tmp, manifest, "run")
    _run_svm(tmp, manifest, "spk", "model.standardize=speaker", "model.kernels=[linear]")
    return tmp


def test_svm_baseline_end_to_end_and_selection_never_sees_test(svm_runs):
    tmp_path = svm_runs
    run = tmp_path / "run"
    m = json.loads((run / "metrics.json").read_text())
    for f in ("config.yaml", "splits/train.csv", "splits/test.csv", "splits/split.json", "skipped_files.csv",
              "per_class_metrics.csv", "confusion_matrix.png", "checkpoints/svm.pt"):
        assert (run / f).is_file(), f
    # the keys every recipe writes, under the statistics mode it assumes (nothing of the speaker)
    assert m["test_stats"] == "utterance" and set(m["test_by_stats"]) == {"utterance"}
    assert m["scoring"] == "functionals" and m["n_test"] == 18 and "savee" not in m["split"]
    assert m["svm"]["kernel"] in ("linear", "rbf") and len(m["svm"]["grid"]) == 4
    assert sum(map(sum, m["confusion_matrix"])) == 18
    assert m["test/uar"] > 0.6  # pitch and loudness separate these classes for an unseen speaker
    # the chosen model is the grid's best validation UAR, and the scorer's validation UAR is the same
    assert m["best_val_uar"] == max(g["val_uar"] for g in m["svm"]["grid"])
    assert m["val/uar"] == pytest.approx(m["best_val_uar"])
    import torch

    saved = torch.load(run / "checkpoints/svm.pt", weights_only=True)
    assert saved["svm"]["support_vectors"].shape[1] == 88 and saved["hyper_parameters"]["class_names"] == m["class_names"]

    # test labels changed: kernel, C and the whole validation grid are the same; only the test figure moves
    shuffled = _run_svm(tmp_path, _tiny_corpus(tmp_path, test_labels_shuffled=True), "shuffled")
    assert shuffled["svm"]["grid"] == [{**g, "seconds": s["seconds"]} for g, s in zip(m["svm"]["grid"], shuffled["svm"]["grid"], strict=True)]
    assert (shuffled["svm"]["kernel"], shuffled["svm"]["C"]) == (m["svm"]["kernel"], m["svm"]["C"])
    assert shuffled["test/uar"] < m["test/uar"]


def test_svm_speaker_standardisation_scores_every_statistics_mode(svm_runs):
    m = json.loads((svm_runs / "spk" / "metrics.json").read_text())
    assert set(m["test_by_stats"]) == {"transductive", "enrol4", "enrol8", "training"}
    assert m["test_by_stats"]["enrol4"]["n"] == 18 - 4 and m["test_by_stats"]["enrol8"]["n"] == 18 - 8  # enrolment files left out
    assert m["test_by_stats"]["transductive"]["n"] == 18
    assert m["val_by_stats"]["transductive"]["uar"] == pytest.approx(m["best_val_uar"])  # selection = the scorer's figure


def test_saved_svm_predicts_files_as_the_run_scored_them(svm_runs):
    """predict.py's loader on svm.pt, given the test files by path (decoded again, functionals
    extracted again): the same confusion matrix as the run's metrics.json."""
    from ser_lightning.inference.functionals import FunctionalsPredictor
    from ser_lightning.inference.loading import load_predictor

    run = svm_runs / "run"
    m = json.loads((run / "metrics.json").read_text())
    predictor = load_predictor(run / "checkpoints" / "svm.pt")
    assert isinstance(predictor, FunctionalsPredictor) and predictor.class_names == m["class_names"]
    assert confusion_on_test_part(predictor, run, m["class_names"])[0] == m["confusion_matrix"]
    bad = predictor.predict([str(svm_runs / "missing.wav")])[0]
    assert bad.error and bad.label is None
    with pytest.raises(ConfigError, match="adapt=bn"):
        predictor.adapted([])


def test_late_fusion_through_the_ensemble_path(svm_runs):
    """results.py's ensemble scorer on two functionals models: file-level probability average."""
    from ser_lightning.evaluation.ensemble import evaluate_ensemble

    runs = [svm_runs / "run", svm_runs / "spk"]
    scores = evaluate_ensemble(runs, parts=("val", "test"))
    member_val = [json.loads((r / "metrics.json").read_text())["val_by_stats"] for r in runs]
    assert scores["val"].member_uar[0] == pytest.approx(member_val[0]["utterance"]["uar"])
    assert scores["test"].probabilities.shape == (18, 3)
    assert_fusion_is_member_mean([r / "checkpoints" / "svm.pt" for r in runs], scores["test"].paths[0])


@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_svm_head_reproduces_scikit_learn(n_classes, kernel):
    import torch
    from sklearn.svm import SVC

    from ser_lightning.models.svm import SVMHead

    rng = np.random.default_rng(n_classes)
    x, y = rng.standard_normal((80, 6)), rng.integers(0, n_classes, 80)
    x[:, 0] += y
    model = SVC(kernel=kernel, C=1.0, gamma="scale", class_weight="balanced").fit(x, y)
    head = SVMHead(*(torch.from_numpy(np.asarray(a)) for a in (model.support_vectors_, model.dual_coef_, model.intercept_, model.n_support_)),
                   kernel, model._gamma)
    xt = rng.standard_normal((25, 6))
    ref = model.decision_function(xt)
    ref = np.stack([-ref, ref], axis=1) if ref.ndim == 1 else ref
    np.testing.assert_allclose(head(torch.from_numpy(xt)).numpy(), ref, atol=1e-5)


def test_svm_config_errors_are_listed_at_once():
    from hydra import compose, initialize_config_dir

    from ser_lightning.baselines.svm import check_svm_config
    from tests.conftest import REPO

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["model=svm", "features=mfcc", "model.standardize=global", "model.C=[0]"])
    with pytest.raises(ConfigError) as err:
        check_svm_config(cfg)
    assert all(k in str(err.value) for k in ("features=mfcc", "model.standardize", "model.C"))
