"""One error taxonomy: every error a user can fix is a SERUserError, which the command
runners turn into one message and exit code 2; any other exception (a bug) keeps its
traceback, even a plain ValueError."""

from __future__ import annotations

import inspect

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from ser_lightning import errors
from ser_lightning.cli.common import user_error
from ser_lightning.errors import ConfigError, SERUserError
from tests.conftest import REPO


def test_every_user_error_derives_from_the_base_and_keeps_its_builtin_base():
    classes = {n: c for n, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__}
    users = {n for n, c in classes.items() if issubclass(c, SERUserError)}
    assert set(classes) - users == {"ExportError"}  # a failed export is reported with exit code 1, not as a usage error
    # callers that caught the built-in base before the taxonomy still catch these
    assert issubclass(errors.CorpusNotFoundError, FileNotFoundError) and issubclass(errors.InputNotFoundError, FileNotFoundError)
    assert issubclass(errors.CheckpointError, ValueError) and issubclass(errors.DataQualityError, RuntimeError)


def test_a_user_error_inside_hydra_instantiate_is_found_behind_the_wrapper():
    cfg = {"_target_": "ser_lightning.models.backbones.build_backbone", "name": "transformer", "n_features": 40, "n_classes": 4}
    with pytest.raises(InstantiationException) as info:
        instantiate(cfg)
    found = user_error(info.value)
    assert isinstance(found, ConfigError) and "model.backbone.name='transformer'" in str(found)
    assert user_error(ValueError("a bug")) is None
    assert user_error(InstantiationException("wrapped bug")) is None


def _predict_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("predict", overrides=[*overrides, "progress=false"])


def test_predict_reports_user_errors_in_one_line_and_lets_bugs_raise(ckpt, originals, monkeypatch, capsys):
    from ser_lightning.cli.predict import run_predict
    from ser_lightning.inference.predictor import Predictor

    cfg = _predict_cfg(f"ckpt_path={ckpt}", f"input={originals}/savee/ALL/*.wav")
    assert run_predict(_predict_cfg(f"ckpt_path={ckpt}", f"input={originals}/savee/ALL/*.wav", "scoring=middle")) == 2
    assert capsys.readouterr().err.strip().startswith("error: scoring='middle' is unknown")

    def bug(self, *args, **kwargs):
        raise ValueError("a bug in the predictor")

    monkeypatch.setattr(Predictor, "predict", bug)
    with pytest.raises(ValueError, match="a bug in the predictor"):  # before the taxonomy: "error: ..." and exit code 2
        run_predict(cfg)


@pytest.mark.parametrize("raised, expected", [(ConfigError("data.fold=9 is out of range"), 2), (KeyError("a bug"), KeyError),
                                              (ValueError("a bug"), ValueError)])
def test_train_exits_2_on_a_user_error_and_keeps_the_traceback_of_a_bug(raised, expected, monkeypatch, caplog):
    import ser_lightning.training.pipeline as pipeline
    from ser_lightning.cli.train import run_train

    def train(cfg):
        raise raised

    monkeypatch.setattr(pipeline, "train", train)
    if expected == 2:
        with pytest.raises(SystemExit) as info:
            run_train({})
        assert info.value.code == 2 and "ConfigError: data.fold=9 is out of range" in caplog.text
    else:
        with pytest.raises(expected):
            run_train({})
