"""Every option of every config group composes with Hydra's compose API and instantiates:
the DataModule (without setup), the LightningModule (on made-up class names), the
feature front-end, the augmentation chains, the callbacks, the loggers and the Trainer
(a GPU trainer only where there is a GPU), so a broken ``_target_`` or interpolation
fails here, not after an hour of data preparation. The other entry configs (predict,
eval, export, stream, explore) compose and resolve."""

from __future__ import annotations


import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf, open_dict

from ser_lightning.errors import ConfigError
from tests.conftest import REPO
from tests.helpers.encoders import tiny_overrides, tiny_weights

CONF = REPO / "conf"
#: Groups of conf/train.yaml's defaults list (and the optional ones) -> their options.
GROUPS = {g: sorted(p.stem for p in (CONF / g).glob("*.yaml"))
          for g in ("paths", "data", "features", "augment", "model", "trainer", "logger", "callbacks", "experiment", "hparams_search")}
#: Overrides an option needs to be complete (values the user must give).
NEEDS = {("data", "default"): ["data.corpus=tess"], ("data", "manifest"): ["data.root=/nowhere/manifest.csv"],
         ("features", "waveform"): ["model=ssl"]}  # the waveform is a pretrained encoder's input, and only its
CASES = [(g, o) for g, options in GROUPS.items() for o in options]
#: Options of the classic baseline (model=svm on openSMILE functionals, src/ser_lightning/baselines/svm.py).
EXPERT_OPTIONS = {("model", "svm"), ("features", "egemaps"), ("features", "compare")}
#: models on openSMILE functionals with their own config check (no neural front-end)
FUNCTIONALS_MODELS = {("model", "mlp"), ("features", "encoder")}


def _compose(name: str, overrides: list[str], hydra_config: bool = False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(name, overrides=overrides, return_hydra_config=hydra_config)


def test_every_group_has_options():
    assert all(GROUPS.values()), GROUPS
    assert {"cnn1d", "cnn2d", "resnet2d", "ecapa", "conformer"} <= set(GROUPS["model"]) and "tess" in GROUPS["data"]


@pytest.mark.parametrize("group, option", CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_every_option_composes_and_instantiates(group, option, tmp_path, monkeypatch):
    from ser_lightning.training.pipeline import build_callbacks, build_datamodule, build_loggers
    from ser_lightning.transforms.augment import SPECTROGRAM_AUGMENTS, TARGET_AUGMENTS, WAVEFORM_AUGMENTS, build_chain
    from ser_lightning.transforms.features import FeatureExtractor

    monkeypatch.chdir(tmp_path)  # loggers and the Trainer may create folders
    monkeypatch.setenv("WANDB_MODE", "offline")
    if (group, option) in FUNCTIONALS_MODELS:  # model=mlp on functionals: its own check, and its head builds
        from ser_lightning.baselines.mlp import check_mlp_config
        from ser_lightning.models.mlp import MLPHead

        cfg = _compose("train", ["model=mlp", "features=egemaps", f"{group}={option}"])
        check_mlp_config(cfg)
        head = MLPHead(88, 3, list(cfg.model.hidden), cfg.model.dropout, cfg.model.input_dropout)
        assert head(torch.zeros(2, 88)).shape == (2, 3)
        if option == "encoder":  # a frozen encoder's embedding: the functionals models take it, a neural model is told where to go
            from ser_lightning.training.config_validation import validate_config

            with pytest.raises(ConfigError, match="model=ssl"):
                validate_config(_compose("train", ["features=encoder"]))
        return
    if (group, option) in EXPERT_OPTIONS:  # the SVM baseline and its openSMILE features: no neural front-end or model
        from ser_lightning.baselines.svm import check_svm_config

        extra = [] if group == "features" else ["features=egemaps"]
        check_svm_config(_compose("train", [f"{group}={option}", "model=svm", *extra]))
        return
    if group == "experiment" and _compose("train", [f"{group}={option}"]).model.get("name") == "mlp":
        # an experiment on an encoder's utterance embedding (general, release): the functionals model's own check
        from ser_lightning.baselines.mlp import check_mlp_config
        from ser_lightning.models.mlp import MLPHead

        cfg = _compose("train", [f"{group}={option}"])
        check_mlp_config(cfg)
        assert cfg.features.kind == "encoder" and cfg.features.encoder.name == "whisper_base"
        head = MLPHead(4096, 7, list(cfg.model.hidden), cfg.model.dropout, cfg.model.input_dropout)
        assert head(torch.zeros(2, 4096)).shape == (2, 7)
        return
    overrides = [f"{group}={option}", *NEEDS.get((group, option), [])]
    if "model=ssl" in overrides:  # a weight file: a tiny random encoder of the family (tests/helpers/encoders.py)
        overrides += tiny_overrides(tiny_weights(tmp_path / "tiny.pth"), tmp_path / "emb")[1:]
    cfg = _compose("train", overrides, hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
        cfg.paths.data_dir = str(tmp_path / "data")  # not read: setup() is not called
        cfg.paths.cache_dir = str(tmp_path / "cache")
    OmegaConf.resolve(cfg.hydra)  # the sweeper / launcher settings interpolate the run's config

    dm = build_datamodule(cfg)
    assert dm.corpus == cfg.data.corpus and dm.feature_config.n_features > 0
    feats = FeatureExtractor(dm.feature_config)(torch.zeros(2, int(dm.clip_seconds * dm.sample_rate)))
    assert feats.shape[:2] == (2, dm.feature_config.n_features)
    for registry in (WAVEFORM_AUGMENTS, SPECTROGRAM_AUGMENTS, TARGET_AUGMENTS):
        build_chain(OmegaConf.to_container(cfg.augment, resolve=True), registry, sample_rate=dm.sample_rate)

    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model_cfg["class_weights"] = None  # "balanced" needs the training part's class counts (setup)
    model = instantiate(model_cfg, class_names=["angry", "happy", "sad"], features=dm.feature_config.to_dict(),
                        clip_seconds=dm.clip_seconds, _convert_="all")
    assert model(feats).shape == (2, 3)

    loggers = build_loggers(cfg)
    callbacks = build_callbacks(cfg, has_logger=bool(loggers))
    assert len(callbacks) == sum(1 for c in (cfg.callbacks or {}).values() if c and "_target_" in c) - \
        (0 if loggers else sum(1 for c in (cfg.callbacks or {}).values() if c and c.get("_target_", "").endswith("LearningRateMonitor")))
    if cfg.trainer.get("accelerator") == "gpu" and not torch.cuda.is_available():
        assert get_class(cfg.trainer._target_)  # instantiating needs a GPU
    else:
        with open_dict(cfg):
            if cfg.trainer.get("strategy") == "ddp" and not torch.cuda.is_available():
                cfg.trainer.sync_batchnorm = False  # as conf/trainer/ddp.yaml says for a CPU machine
        instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for key in ("sweeper", "launcher"):
        assert get_class(cfg.hydra[key]._target_)


@pytest.mark.parametrize("name, overrides", [
    ("predict", ["ckpt_path=best.ckpt", "input=clip.wav"]),
    ("eval", ["ckpt_path=best.ckpt", "data=ravdess"]),
    ("export", ["ckpt_path=best.ckpt"]),
    ("stream", ["ckpt_path=best.ckpt"]),
    ("serve", ["ckpt_path=best.ckpt"]),
    ("explore", ["data=savee"]),
    ("train", ["hydra/launcher=joblib"]),
])
def test_the_entry_configs_compose_and_resolve(name, overrides, tmp_path):
    cfg = _compose(name, overrides, hydra_config=True)
    with open_dict(cfg):
        if "paths" in cfg:
            cfg.paths.output_dir = str(tmp_path)
    OmegaConf.resolve(cfg)
    assert get_class(cfg.hydra.launcher._target_)
