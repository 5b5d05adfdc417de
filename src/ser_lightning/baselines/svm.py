"""The classic baseline: openSMILE utterance functionals -> standardisation -> SVM.

``python train.py model=svm features=egemaps|compare data=... `` (or
``python scripts/results.py run <protocol> --model svm --features egemaps``) runs it
instead of the neural training loop, on the same data config, the same split code and
into the same run directory layout: ``config.yaml``, ``splits/``, ``skipped_files.csv``,
``metrics.json`` (the keys of :func:`ser_lightning.evaluation.run_scoring.scoring_report`),
``per_class_metrics.csv``, ``confusion_matrix.png``, ``reliability_diagram.png`` and the
fitted model ``checkpoints/svm.pt`` (tensors only, loadable with ``weights_only=True``).

The recipe, as SER papers run it (e.g. Eyben et al., 2016, Sec. 6; Schuller et al.,
INTERSPEECH 2016 ComParE baseline):

1. features: the 88 eGeMAPS v02 or 6,373 ComParE 2016 functionals of each whole file
   (:mod:`ser_lightning.transforms.opensmile_features`; cached per file,
   :mod:`ser_lightning.data.feature_cache`). Files openSMILE cannot use are dropped
   before the split, as undecodable ones are (:mod:`ser_lightning.data.usable`).
2. standardisation (``model.standardize``): ``training``: z-scores with the mean and
   standard deviation of the training part (needs nothing of a test speaker: for the one
   scorer a model without speaker statistics, so reported under its ``utterance`` mode); ``speaker``: each speaker's files by that
   speaker's own mean and standard deviation (training and validation speakers over
   their train+val files, labels unused), test speakers under the test-time statistics
   modes of :mod:`ser_lightning.evaluation.scoring` (transductive, enrol<k>: k files drawn
   label-blind and left out, training: the training part's pooled statistics).
3. classifier: scikit-learn's ``SVC`` (libsvm; one-vs-one, ``class_weight="balanced"``),
   kernel and C chosen by the best **validation** UAR over ``model.kernels`` x ``model.C``
   (ties: the smaller C, then the first kernel listed), fitted on the training part only;
   the test part is scored once with the chosen model.
4. scores: the fitted SVM is saved as tensors (``checkpoints/svm.pt``) and scored by the
   one scorer (:func:`ser_lightning.evaluation.run_scoring.score_run` with its
   :class:`~ser_lightning.inference.functionals.FunctionalsPredictor`, what ``eval.py`` and
   ``predict.py`` load too): its one-vs-rest decision values (scikit-learn's
   ``decision_function``; the arg-max selection used) are the logits, a softmax temperature
   is fitted on validation as for the neural models (``calibration``), and every
   test-time statistics mode, probability, ECE and risk-coverage figure is computed as
   for any recipe.

``data.trim`` is refused (the functionals would come from trimmed audio that
``predict.py`` never sees).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from ser_lightning.baselines.functionals import STANDARDIZE, Standardizer, functionals_config_problems, prepare_functionals, score_functionals_run
from ser_lightning.errors import ConfigError
from ser_lightning.metrics import confusion_scores

log = logging.getLogger(__name__)

__all__ = ["STANDARDIZE", "KERNELS", "Standardizer", "check_svm_config", "select_svm", "save_svm", "train_svm"]

KERNELS = ("linear", "rbf")


def check_svm_config(cfg: DictConfig) -> None:
    """One :class:`ConfigError` listing every problem of a ``model=svm`` config."""
    problems = functionals_config_problems(cfg, "svm")
    kernels = list(cfg.model.get("kernels") or [])
    if not kernels or any(k not in KERNELS for k in kernels):
        problems.append(f"model.kernels={kernels}: a non-empty list of {list(KERNELS)}")
    cs = list(cfg.model.get("C") or [])
    if not cs or any(not isinstance(c, (int, float)) or c <= 0 for c in cs):
        problems.append(f"model.C={cs}: a non-empty list of numbers > 0")
    if problems:
        raise ConfigError("invalid model=svm config:\n  " + "\n  ".join(problems))

def _ovr_logits(model, x: np.ndarray) -> np.ndarray:
    """``[n, n_classes]`` one-vs-rest decision values (``n_classes == 2``: ``[-d, d]``)."""
    d = model.decision_function(x)
    return np.stack([-d, d], axis=1) if d.ndim == 1 else d


def select_svm(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, n_classes: int,
               kernels: list[str], cs: list[float], seed: int = 0) -> tuple[object, list[dict]]:
    """Fit one SVC per (kernel, C) on the training part and keep the one with the best
    validation UAR (ties: smaller C, then the earlier kernel). Only ``x_train``/``x_val``
    are seen: the test part never reaches this function.

    Returns:
        ``(chosen fitted SVC, [{"kernel", "C", "val_uar", "seconds"}, ...] of the grid)``.
    """
    from sklearn.svm import SVC

    grid, best, best_key = [], None, None
    for kernel in kernels:
        for c in sorted(cs):
            start = time.perf_counter()
            model = SVC(kernel=kernel, C=float(c), gamma="scale", class_weight="balanced", decision_function_shape="ovr",
                        random_state=seed).fit(x_train, y_train)
            pred = _ovr_logits(model, x_val).argmax(axis=1)  # the arg-max the scored figures use
            cm = np.bincount(y_val * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
            uar = confusion_scores(cm)["uar"]
            grid.append({"kernel": kernel, "C": float(c), "val_uar": uar, "seconds": time.perf_counter() - start})
            key = (uar, -float(c), -kernels.index(kernel))
            if best_key is None or key > best_key:
                best, best_key = model, key
    return best, grid


def save_svm(path: Path, model, standardizer: Standardizer, hp: dict) -> None:
    """The fitted SVM as plain tensors and settings (``torch.load(weights_only=True)`` reads it)."""
    mean, std = standardizer.training_stats
    state = {
        "support_vectors": torch.from_numpy(np.asarray(model.support_vectors_, dtype=np.float64)),
        "dual_coef": torch.from_numpy(np.asarray(model.dual_coef_, dtype=np.float64)),
        "intercept": torch.from_numpy(np.asarray(model.intercept_, dtype=np.float64)),
        "n_support": torch.from_numpy(np.asarray(model.n_support_, dtype=np.int64)),
        "training_mean": torch.from_numpy(mean.astype(np.float32)), "training_std": torch.from_numpy(std.astype(np.float32)),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"hyper_parameters": {**hp, "kernel": model.kernel, "C": float(model.C), "gamma": float(model._gamma)}, "svm": state}, path)


def train_svm(cfg: DictConfig) -> dict[str, float]:
    """Fit, select and score the SVM baseline of ``cfg`` (``model=svm``); writes the run
    directory described in the module docstring.

    Returns:
        The headline ``val/*`` and ``test/*`` metrics.

    Raises:
        ConfigError: see :func:`check_svm_config`; ``opensmile`` or ``scikit-learn`` missing.
        DataQualityError: more than ``data.max_bad_fraction`` of the files unusable.
    """
    check_svm_config(cfg)
    try:
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise ConfigError("model=svm needs scikit-learn: pip install 'ser-lightning[expert]'") from exc
    start = time.perf_counter()
    out_dir = Path(cfg.paths.output_dir)
    standardize = str(cfg.model.standardize)

    # 1. the usable files (decoded as training decodes them) and their functionals, before the split
    data = prepare_functionals(cfg)
    name = data.feature_set

    # 2. standardisation: training statistics, or each speaker's own over their files of the part
    tr, va = data.parts["train"], data.parts["val"]
    standardizer = Standardizer(standardize, tr.x)
    x = data.standardized(standardizer)

    # 3. kernel and C on validation only
    model, grid = select_svm(x["train"], tr.y, x["val"], va.y, len(data.class_names),
                             list(cfg.model.kernels), list(cfg.model.C), int(cfg.seed))
    log.info("chosen on validation: kernel=%s C=%g (val UAR %.3f)", model.kernel, model.C, max(g["val_uar"] for g in grid))
    hp = {"model": "svm", "features": data.record,
          "class_names": data.class_names, "standardize": standardize, "sample_rate": data.sample_rate,
          "data_settings": data.data_settings, "split_fingerprint": data.fingerprint}
    ckpt = out_dir / "checkpoints" / "svm.pt"
    save_svm(ckpt, model, standardizer, hp)

    # 4. the saved model scored by the one scorer (what eval.py and predict.py run), calibrated on validation
    n_params = int(model.support_vectors_.size + model.dual_coef_.size + model.intercept_.size + 2 * tr.x.shape[1])
    extra = {
        "best_val_uar": max(g["val_uar"] for g in grid),
        "best_checkpoint": "checkpoints/svm.pt",
        "svm": {"kernel": model.kernel, "C": float(model.C), "gamma": float(model._gamma), "support_vectors": int(model.support_vectors_.shape[0]),
                "standardize": standardize, "grid": grid},
        "epochs": 0,
        "parameters": n_params,
    }
    return score_functionals_run(cfg, data, ckpt, f"{name} + SVM ({model.kernel}, C={model.C:g})",
                                 extra, start=start)
