"""Invalid config values fail before training, naming the key and the allowed values."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException
from omegaconf import open_dict

from ser_lightning.errors import ConfigError
from ser_lightning.training.config_validation import resume_checkpoint, validate_config
from tests.conftest import REPO


def compose_train(overrides: list[str], data_dir, output_dir="/tmp/unused"):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.data_dir = str(data_dir)
        cfg.paths.output_dir = str(output_dir)
    return cfg


def test_default_config_is_valid(data_dir):
    validate_config(compose_train([], data_dir))
    validate_config(compose_train(["data=savee", "data.split=loso", "data.fold=2", "model=cnn1d"], data_dir))


@pytest.mark.parametrize("overrides, expected", [
    (["model.backbone.name=resnet"], ["model.backbone.name='resnet'", "'cnn1d', 'cnn2d'"]),
    (["data.corpus=iemocap"], ["data.corpus='iemocap'", "'emodb'", "'ravdess'", "'tess'"]),
    (["model.optimizer.lr=-0.001"], ["model.optimizer.lr=-0.001", "> 0"]),
    (["data.split=kfold", "data.fold=5"], ["data.fold=5", "allowed 0..4", "data.num_folds=5"]),
    (["data=savee", "data.split=loso", "data.fold=3"], ["data.fold=3", "LOSO", "allowed 0..2", "3 speakers"]),
    (["data.split=leave_one_out"], ["data.split='leave_one_out'", "'kfold'", "'loso'"]),
    (["features.kind=wav2vec"], ["features.kind='wav2vec'", "'logmel'", "'mfcc'"]),
    (["features.normalize=global"], ["features.normalize='global'", "'speaker'", "'utterance'"]),
    (["model.backbone.dropout=1.5"], ["model.backbone.dropout=1.5", "[0, 1)"]),
    (["adapt=bn", "report_stats=[training]"], ["adapt=bn", "enrol<k>"]),
    (["adapt=xx"], ["adapt=xx", "'bn'"]),
])
def test_invalid_value_names_key_and_allowed_values(data_dir, overrides, expected):
    cfg = compose_train(overrides, data_dir)
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    for text in expected:
        assert text in str(info.value)


def test_missing_data_root_and_all_problems_reported_together(tmp_path, data_dir):
    cfg = compose_train(["model.optimizer.lr=0"], tmp_path / "nowhere")
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    message = str(info.value)
    assert f"data.root={tmp_path / 'nowhere' / 'tess'} does not exist" in message and "Expected layout" in message
    assert "model.optimizer.lr=0" in message  # both problems in one message


def test_unknown_group_option_lists_the_available_ones():
    with pytest.raises(MissingConfigException) as info:
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            compose("train", overrides=["model=transformer"])
    message = str(info.value)
    assert "model/transformer" in message and "cnn1d" in message and "cnn2d" in message


def test_resume_finds_last_checkpoint_or_says_where_it_looked(tmp_path, data_dir):
    run = tmp_path / "run"
    cfg = compose_train(["resume=true"], data_dir, output_dir=run)
    with pytest.raises(ConfigError, match="resume=True: no checkpoint at .*last.ckpt"):
        resume_checkpoint(cfg)
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert resume_checkpoint(cfg) == str(run / "checkpoints" / "last.ckpt")
    other = compose_train([f"resume={run}"], data_dir, output_dir=tmp_path / "new_run")
    assert resume_checkpoint(other) == str(run / "checkpoints" / "last.ckpt")
    assert resume_checkpoint(compose_train([], data_dir, output_dir=run)) is None


# --- the augmentation of openSMILE descriptor input (features=egemaps|compare) -----------


def _augment_group(option: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("train", overrides=[f"augment={option}"]).augment


@pytest.mark.parametrize("kind", ["egemaps", "compare"])
@pytest.mark.parametrize("model", ["cnn2d", "cnn1d"])
def test_descriptor_features_pick_specaugment_and_pass_the_check(data_dir, kind, model):
    """``python train.py data=savee features=egemaps``: the group picks augment=specaugment in
    place of the waveform augment=default, so the run passes the config check and the DataModule."""
    from ser_lightning.training.pipeline import build_datamodule

    cfg = compose_train(["data=savee", f"features={kind}", f"model={model}"], data_dir)
    assert cfg.augment == _augment_group("specaugment")
    validate_config(cfg)
    assert build_datamodule(cfg).spec_augment  # the masks are on; no ConfigError on the way
    # features the waveform augmentation works on keep augment=default
    assert compose_train(["features=mfcc"], data_dir).augment == _augment_group("default")
    assert compose_train([], data_dir).augment == _augment_group("default")


@pytest.mark.parametrize("overrides, keys", [
    (["augment=default"], ["augment.noise", "augment.gain"]),
    (["augment=strong"], ["augment.speed", "augment.pitch", "augment.time_shift", "augment.gain", "augment.noise"]),
    (["augment=channel"], ["augment.gain", "augment.eq", "augment.reverb", "augment.telephone", "augment.noise"]),
    (["+augment.noise={p: 0.5, snr_db: [10, 40]}"], ["augment.noise"]),
])
def test_an_explicit_waveform_augmentation_for_descriptors_is_refused_naming_its_keys(data_dir, overrides, keys):
    """The command line wins over the group's choice, and a waveform augmentation then gets
    the ConfigError naming its keys and the fix, before a run directory is written."""
    cfg = compose_train(["data=savee", "features=egemaps", *overrides], data_dir)
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    message = str(info.value)
    assert "features=egemaps" in message and "augment=specaugment" in message and "augment=none" in message
    for key in keys:
        assert key in message and f"{key}=null" in message
    assert "augment.specaugment" not in message


@pytest.mark.parametrize("overrides, expected", [
    (["augment=none"], "none"),
    (["augment=specaugment", "augment.specaugment.p=0.3"], None),
    (["+augment.mixup={p: 0.5, alpha: 0.4}"], None),
])
def test_explicit_augmentations_descriptors_can_take_win_and_pass(data_dir, overrides, expected):
    cfg = compose_train(["data=savee", "features=compare", *overrides], data_dir)
    if expected is not None:
        assert cfg.augment == _augment_group(expected)
    validate_config(cfg)


@pytest.mark.parametrize("kind", ["egemaps", "compare"])
def test_functionals_models_compose_with_the_descriptor_groups(data_dir, kind):
    """model=svm and model=mlp (utterance functionals, no augmentation) compose with the
    features group's augment override and pass their own config checks."""
    from ser_lightning.baselines.mlp import check_mlp_config
    from ser_lightning.baselines.svm import check_svm_config

    check_svm_config(compose_train(["model=svm", f"features={kind}", "data=savee"], data_dir))
    check_mlp_config(compose_train(["model=mlp", f"features={kind}", "data=savee"], data_dir))
    check_mlp_config(compose_train(["model=mlp", f"features={kind}", "augment=strong"], data_dir))


def test_model_and_experiment_choices_of_augment_still_win(data_dir):
    # model=ssl picks features=waveform and augment=none; with features=egemaps given as well,
    # the model's augment=none wins over the features group's choice (then the check refuses the pair)
    assert compose_train(["model=ssl", "features=egemaps"], data_dir).augment == _augment_group("none")
    # an experiment's augment choice wins too (and is refused for descriptor input as any explicit one)
    cfg = compose_train(["experiment=speaker_independent", "features=egemaps"], data_dir)
    assert cfg.augment == _augment_group("strong")
    with pytest.raises(ConfigError, match="augment.speed"):
        validate_config(cfg)
    # explore.py (no augmentation) still composes the descriptor groups
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        assert compose("explore", overrides=["features=egemaps"]).features.kind == "egemaps"
