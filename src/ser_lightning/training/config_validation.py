"""Check a composed training config before any data is decoded or any model is built.

Hydra already rejects an unknown config-group option (``model=foo``) with the list of
available options. This module catches the values inside the groups: an unknown
backbone or corpus name, a non-positive learning rate, a fold outside the folds the
data has, a missing data root. Every problem is reported in one message that names the
config key and the allowed values, so a sweep of 40 jobs fails in seconds, not after
the first job has decoded a corpus.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ser_lightning.errors import ConfigError


def _get(cfg: DictConfig, key: str, default=None):
    from omegaconf import OmegaConf

    return OmegaConf.select(cfg, key, default=default)


def _check_positive(cfg, key: str, problems: list[str], strict: bool = True) -> None:
    value = _get(cfg, key)
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or (value <= 0 if strict else value < 0):
        problems.append(f"{key}={value}: must be a number {'> 0' if strict else '>= 0'}")


def data_problems(cfg: DictConfig) -> list[str]:
    """Problems of the ``data`` group: corpus name, root, split, fold and sizes.

    For ``loso`` the corpus is listed (file names only, nothing decoded) to know how
    many speakers there are.
    """
    from ser_lightning.data import corpora
    from ser_lightning.data.corpora import READERS, read_corpus
    from ser_lightning.data.splits import SPLIT_PROTOCOLS, speakers_of
    from ser_lightning.errors import CorpusNotFoundError

    problems: list[str] = []
    corpus = _get(cfg, "data.corpus")
    if corpus not in READERS:
        problems.append(f"data.corpus='{corpus}' is unknown; allowed: {sorted(READERS)}")
        return problems
    root = Path(str(_get(cfg, "data.root"))).expanduser()
    root_ok = root.is_file() if corpus == "manifest" else root.is_dir()
    if not root_ok:
        layout = getattr(corpora, f"{corpus.upper()}_LAYOUT", "")
        problems.append(
            f"data.root={root} does not exist ({corpus}). Expected layout: {layout}. Set SER_DATA_DIR "
            "(or paths.data_dir=...) to the folder holding the corpora, or data.root=... to this corpus's "
            + ("manifest CSV." if corpus == "manifest" else "folder.")
        )
    split = _get(cfg, "data.split")
    if split not in SPLIT_PROTOCOLS:
        problems.append(f"data.split='{split}' is unknown; allowed: {list(SPLIT_PROTOCOLS)}")
    fold, num_folds = _get(cfg, "data.fold", 0), _get(cfg, "data.num_folds", 5)
    if split == "kfold":
        if not isinstance(num_folds, int) or num_folds < 3:
            problems.append(f"data.num_folds={num_folds}: must be an integer >= 3 (train, val and test groups)")
        elif not isinstance(fold, int) or not 0 <= fold < num_folds:
            problems.append(f"data.fold={fold} is out of range: allowed 0..{num_folds - 1} (data.num_folds={num_folds})")
    if split == "loso" and root_ok:
        try:
            n_speakers = len(speakers_of(read_corpus(corpus, root)))
        except (CorpusNotFoundError, ValueError):
            n_speakers = None  # the reader's own error is clearer; it is raised in setup
        if n_speakers is not None and (not isinstance(fold, int) or not 0 <= fold < n_speakers):
            problems.append(f"data.fold={fold} is out of range for LOSO on {corpus}: allowed 0..{n_speakers - 1} ({n_speakers} speakers)")
    for key in ("data.val_fraction", "data.test_fraction"):
        value = _get(cfg, key)
        if value is not None and not (isinstance(value, (int, float)) and 0 < value < 1):
            problems.append(f"{key}={value}: must be in (0, 1)")
    for key in ("data.batch_size", "data.clip_seconds", "data.sample_rate"):
        _check_positive(cfg, key, problems)
    if _get(cfg, "data.gender") not in (None, "female", "male"):
        problems.append(f"data.gender='{_get(cfg, 'data.gender')}' is unknown; allowed: female, male, null")
    return problems


def model_problems(cfg: DictConfig) -> list[str]:
    """Problems of the ``model`` and ``features`` groups: names and learning rate, and the
    augmentation each feature kind can take."""
    from ser_lightning.models.backbones import BACKBONES
    from ser_lightning.models.module import OPTIMIZERS, SCHEDULERS
    from ser_lightning.transforms.features import FEATURE_KINDS, NORMALIZATIONS

    problems: list[str] = []
    backbone = _get(cfg, "model.backbone.name")
    if backbone not in BACKBONES:
        problems.append(f"model.backbone.name='{backbone}' is unknown; allowed: {sorted(BACKBONES)}")
    elif backbone == "ecapa":  # an optional extra: say so before the data are prepared
        from ser_lightning.models.ecapa import speechbrain_missing

        if missing := speechbrain_missing():
            problems.append(missing)
    optimizer = _get(cfg, "model.optimizer.name")
    if optimizer not in OPTIMIZERS:
        problems.append(f"model.optimizer.name='{optimizer}' is unknown; allowed: {sorted(OPTIMIZERS)}")
    _check_positive(cfg, "model.optimizer.lr", problems)
    _check_positive(cfg, "model.optimizer.weight_decay", problems, strict=False)
    scheduler = _get(cfg, "model.scheduler.name", "none")
    if scheduler not in SCHEDULERS:
        problems.append(f"model.scheduler.name='{scheduler}' is unknown; allowed: {list(SCHEDULERS)}")
    dropout = _get(cfg, "model.backbone.dropout")
    if dropout is not None and not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        problems.append(f"model.backbone.dropout={dropout}: must be in [0, 1)")
    kind = _get(cfg, "features.kind")
    if kind == "encoder":
        problems.append("features=encoder is a frozen encoder's utterance embedding for model=mlp (model.hidden=[]: the linear "
                        "probe) or model=svm; a neural head on a pretrained encoder is model=ssl (model.encoder.name=whisper_base)")
    elif kind not in FEATURE_KINDS:
        problems.append(f"features.kind='{kind}' is unknown; allowed: {list(FEATURE_KINDS)}")
    normalize = _get(cfg, "features.normalize", "utterance")
    if normalize not in NORMALIZATIONS:
        problems.append(f"features.normalize='{normalize}' is unknown; allowed: {list(NORMALIZATIONS)}")
    if (backbone == "ssl") != (kind == "waveform"):
        problems.append(f"model.backbone.name={backbone} with features.kind={kind}: a pretrained encoder (model=ssl) takes "
                        f"features=waveform, and only it does")
    if kind in ("egemaps", "compare"):  # openSMILE descriptors: refused before a run directory is written
        from ser_lightning.transforms.augment import descriptor_augment_problem

        try:
            if problem := descriptor_augment_problem(kind, _get(cfg, "augment")):
                problems.append(problem)
        except ConfigError as exc:  # an unknown augment.<name>
            problems.append(str(exc))
    if backbone == "ssl" and _get(cfg, "model.encoder.freeze", True) and _get(cfg, "model.encoder.cache", False):
        augments = [k for k, v in (_get(cfg, "augment") or {}).items() if v and (not hasattr(v, "get") or (v.get("enabled", True) and (v.get("p") or 1) > 0))]
        if augments:
            problems.append(f"model.encoder.cache=true stores each window's embedding once: augmentation ({', '.join(augments)}) "
                            f"would make every training crop new; use augment=none, or model.encoder.cache=false to augment")
    return problems


def resume_checkpoint(cfg: DictConfig) -> str | None:
    """The checkpoint to resume from: ``ckpt_path`` when set, else for ``resume=true``
    the run directory's ``checkpoints/last.ckpt``, for ``resume=<run dir>`` that
    directory's ``checkpoints/last.ckpt``; ``None`` for a fresh start.

    Raises:
        ConfigError: ``resume`` is set and there is no ``last.ckpt`` to resume from.
    """
    if _get(cfg, "ckpt_path"):
        return str(_get(cfg, "ckpt_path"))
    resume = _get(cfg, "resume", False)
    if resume in (None, False, "false", ""):
        return None
    run_dir = Path(str(_get(cfg, "paths.output_dir"))) if resume is True else Path(str(resume)).expanduser()
    last = run_dir if run_dir.is_file() else run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise ConfigError(
            f"resume={resume}: no checkpoint at {last}. resume=true resumes the run directory of this "
            "command (rerun with hydra.run.dir=<the run dir>); resume=<run dir> resumes that run; "
            "or pass ckpt_path=<file>."
        )
    return str(last)


def scoring_problems(cfg: DictConfig) -> list[str]:
    """How the best checkpoint will be scored after training (checked before training, so
    a typo does not cost a finished run its report)."""
    from ser_lightning.evaluation.scoring import parse_stats_mode
    from ser_lightning.inference.adaptation import ADAPT
    from ser_lightning.inference.predictor import SCORING

    problems = []
    if _get(cfg, "scoring", "windows") not in SCORING:
        problems.append(f"scoring={_get(cfg, 'scoring')} is unknown; allowed: {list(SCORING)}")
    if _get(cfg, "calibration", "auto") not in ("auto", "temperature", "none"):
        problems.append(f"calibration={_get(cfg, 'calibration')} is unknown; allowed: ['auto', 'temperature', 'none']")
    for key in ("test_stats", "report_stats"):
        values = _get(cfg, key)
        for mode in ([values] if isinstance(values, str) else list(values or [])):
            try:
                parse_stats_mode(str(mode))
            except ValueError as exc:
                problems.append(f"{key}: {exc}")
    adapt = _get(cfg, "adapt", "none")
    requested = [str(m) for m in [_get(cfg, "test_stats", "training"), *list(_get(cfg, "report_stats") or [])]]
    if adapt not in ADAPT:
        problems.append(f"adapt={adapt} is unknown; allowed: {list(ADAPT)}")
    elif adapt == "bn" and not any(m.startswith("enrol") for m in requested):
        problems.append("adapt=bn adapts on enrolment recordings: report_stats must name an enrol<k> mode (e.g. enrol8)")
    return problems


def validate_config(cfg: DictConfig) -> None:
    """Check ``cfg`` (the composed ``conf/train.yaml``) before training starts.

    Raises:
        ConfigError: one line per invalid value, naming the key and the allowed values
            (an unknown model or corpus, a non-positive learning rate, a fold out of
            range, a missing data root, ...).
    """
    problems = data_problems(cfg) + model_problems(cfg)
    max_epochs = _get(cfg, "trainer.max_epochs")
    if max_epochs is not None and max_epochs != -1 and (not isinstance(max_epochs, int) or max_epochs < 1):
        problems.append(f"trainer.max_epochs={max_epochs}: must be an integer >= 1 (or -1 for no limit)")
    problems += scoring_problems(cfg)
    ckpt_path = _get(cfg, "ckpt_path")
    if ckpt_path and not Path(str(ckpt_path)).is_file():
        problems.append(f"ckpt_path={ckpt_path} does not exist (a checkpoint file, e.g. <run dir>/checkpoints/last.ckpt)")
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
