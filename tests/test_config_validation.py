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
