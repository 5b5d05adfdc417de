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

import csv
import hashlib
import json
import logging
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from ser_lightning.data.corpora import Utterance, write_manifest
from ser_lightning.data.feature_cache import load_or_extract
from ser_lightning.data.recorded_split import data_fingerprint, normalize_data_settings, split_fingerprint, write_split_metadata
from ser_lightning.data.usable import drop_unusable, read_rows, split_usable
from ser_lightning.errors import ConfigError, DataQualityError
from ser_lightning.evaluation.run_scoring import calibration_report, headline_metrics, score_run, scoring_report
from ser_lightning.inference.functionals import SCORING, FunctionalsPredictor
from ser_lightning.labels import sort_labels
from ser_lightning.metrics import confusion_scores, write_per_class_csv
from ser_lightning.transforms.opensmile_features import FEATURE_SETS, feature_names

log = logging.getLogger(__name__)

#: ``model.standardize`` values.
STANDARDIZE = ("training", "speaker")
KERNELS = ("linear", "rbf")


def check_svm_config(cfg: DictConfig) -> None:
    """One :class:`ConfigError` listing every problem of a ``model=svm`` config."""
    problems = []
    kind = OmegaConf.select(cfg, "features.kind")
    if kind not in FEATURE_SETS:
        problems.append(f"features={kind}: model=svm takes openSMILE functionals; use features=egemaps or features=compare")
    if cfg.model.get("standardize") not in STANDARDIZE:
        problems.append(f"model.standardize={cfg.model.get('standardize')}: allowed {list(STANDARDIZE)}")
    kernels = list(cfg.model.get("kernels") or [])
    if not kernels or any(k not in KERNELS for k in kernels):
        problems.append(f"model.kernels={kernels}: a non-empty list of {list(KERNELS)}")
    cs = list(cfg.model.get("C") or [])
    if not cs or any(not isinstance(c, (int, float)) or c <= 0 for c in cs):
        problems.append(f"model.C={cs}: a non-empty list of numbers > 0")
    if str(OmegaConf.select(cfg, "data.trim") or "none") != "none":
        problems.append(f"data.trim={OmegaConf.select(cfg, 'data.trim')}: model=svm takes the functionals of the whole, untrimmed file")
    if problems:
        raise ConfigError("invalid model=svm config:\n  " + "\n  ".join(problems))


def _stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, std)`` over rows, a zero std replaced by 1 (a constant feature stays 0)."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    return mean, np.where(std > 1e-8, std, 1.0)


class Standardizer:
    """Feature standardisation (``[n, n_features]`` -> same shape): z-scores with the
    training part's statistics, or with given per-row ``(mean, std)`` (a speaker's).

    Args:
        mode: ``training`` or ``speaker`` (recorded; the caller passes the speakers' statistics).
        train: the training part's features ``[n_train, n_features]``.
    """

    def __init__(self, mode: str, train: np.ndarray):
        self.mode = mode
        self.training_stats = _stats(train)

    def __call__(self, x: np.ndarray, stats: list[tuple[np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
        """``x`` standardised by ``stats`` (one ``(mean, std)`` per row) or, when ``None``, the training statistics."""
        if stats is None:
            mean, std = self.training_stats
            return (x - mean) / std
        return (x - np.stack([m for m, _ in stats])) / np.stack([s for _, s in stats])


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


def _parts(split, rows_index: dict[str, int], features: np.ndarray, class_names: list[str]):
    out = {}
    for part in ("train", "val", "test"):
        rows: list[Utterance] = getattr(split, part)
        idx = [rows_index[r.path] for r in rows]
        out[part] = SimpleNamespace(rows=rows, x=features[idx].astype(np.float64), y=np.array([class_names.index(r.label) for r in rows]),
                                    speakers=[r.speaker for r in rows], paths=[r.path for r in rows], corpora=[r.corpus for r in rows])
    return out


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
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    s = normalize_data_settings(data_cfg)
    name, standardize = str(cfg.features.kind), str(cfg.model.standardize)
    trim = str(data_cfg.get("trim") or "none")

    # 1. the usable files (decoded as training decodes them) and their functionals, before the split
    rows = read_rows(s["corpus"], data_cfg["root"], s["gender"], s["reader_args"], s["extra_labels"])
    usable = drop_unusable(rows, s["sample_rate"], data_cfg.get("cache_dir"), s["min_seconds"], None, s["corpus"], trim=trim)
    feats = load_or_extract([r.path for r in rows], usable.audio, name, "functionals",
                            OmegaConf.select(cfg, "paths.feature_cache_dir"), trim=trim)
    log.info("openSMILE %s functionals of %d files: %d cached, %d computed (%.1f s of audio) in %.1f s", name, len(rows),
             feats.hits, feats.computed, feats.audio_seconds, feats.seconds)
    skipped = {**usable.skipped, **feats.errors}
    max_bad = float(data_cfg.get("max_bad_fraction", 0.05))
    if len(skipped) > max_bad * len(rows):
        raise DataQualityError(f"{len(skipped)} of {len(rows)} files of {s['corpus']} cannot be used (more than "
                               f"data.max_bad_fraction={max_bad}); first: {next(iter(skipped.values()))}")
    good = [r for r in rows if r.path not in skipped]
    split = split_usable(good, s["split"], s["val_fraction"], s["test_fraction"], s["seed"], s["fold"], s["num_folds"],
                         s["test_speakers"], s["train_speakers"], s["subset_fraction"], s["test_corpus"], s["val_speakers"])
    class_names = sort_labels({r.label for r in good})
    fingerprint = split_fingerprint(split, data_cfg["root"])
    splits_dir = out_dir / "splits"
    splits_dir.mkdir(parents=True, exist_ok=True)
    for part in ("train", "val", "test"):
        write_manifest(getattr(split, part), splits_dir / f"{part}.csv")
    write_split_metadata(split, data_cfg["root"], splits_dir, data_fingerprint(data_cfg))
    with (out_dir / "skipped_files.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "reason"])
        writer.writerows(sorted(skipped.items()))
    index = {r.path: i for i, r in enumerate(rows)}
    parts = _parts(split, index, feats.values, class_names)
    log.info("split %s (fingerprint %s)", split.describe(), fingerprint)

    # 2. standardisation: training statistics, or each speaker's own over their files of the part
    tr, va = parts["train"], parts["val"]
    speaker_stats = None
    if standardize == "speaker":
        speaker_stats = {}
        for p in (tr, va):  # a training speaker's validation utterances (SAVEE) by their own validation statistics
            for spk in dict.fromkeys(p.speakers):
                speaker_stats[(id(p), spk)] = _stats(p.x[[i for i, x in enumerate(p.speakers) if x == spk]])
    standardizer = Standardizer(standardize, tr.x)

    def standardized(p):
        if standardize == "training":
            return standardizer(p.x)
        return standardizer(p.x, stats=[speaker_stats[(id(p), spk)] for spk in p.speakers])

    # 3. kernel and C on validation only
    model, grid = select_svm(standardized(tr), tr.y, standardized(va), va.y, len(class_names),
                             list(cfg.model.kernels), list(cfg.model.C), int(cfg.seed))
    log.info("chosen on validation: kernel=%s C=%g (val UAR %.3f)", model.kernel, model.C, max(g["val_uar"] for g in grid))
    hp = {"model": "svm", "features": {"kind": name, "level": "functionals", "names": list(feature_names(name))},
          "class_names": class_names, "standardize": standardize, "sample_rate": s["sample_rate"],
          "data_settings": data_fingerprint(data_cfg), "split_fingerprint": fingerprint}
    ckpt = out_dir / "checkpoints" / "svm.pt"
    save_svm(ckpt, model, standardizer, hp)

    # 4. the saved model scored by the one scorer (what eval.py and predict.py run), calibrated on validation;
    # the functionals computed above are handed over (keyed by each wave's bytes) instead of being extracted again
    memo = {}
    for i in index.values():
        if rows[i].path not in skipped:
            memo[hashlib.sha1(np.ascontiguousarray(usable.audio.wave(i), dtype=np.float32).tobytes()).hexdigest()] = feats.values[i]
    predictor = FunctionalsPredictor.from_checkpoint(ckpt, calibration="none", memo=memo)
    dm = SimpleNamespace(split=split, class_names=class_names, split_fingerprint=fingerprint,
                         waveform_of=lambda part_rows: (lambda i: usable.audio.wave(index[part_rows[i].path])))
    scoring_cfg = OmegaConf.merge(cfg, {"scoring": SCORING})
    scores = score_run(ckpt, dm, scoring_cfg, predictor=predictor)
    calib = calibration_report(scores, out_dir, f"{s['corpus']} {name} + SVM")
    report = scoring_report(scoring_cfg, dm, scores, calib)
    headline = scores["test"]["mode"]
    n_params = int(model.support_vectors_.size + model.dual_coef_.size + model.intercept_.size + 2 * tr.x.shape[1])
    report.update({
        "best_val_uar": max(g["val_uar"] for g in grid),
        "best_checkpoint": "checkpoints/svm.pt",
        "svm": {"kernel": model.kernel, "C": float(model.C), "gamma": float(model._gamma), "support_vectors": int(model.support_vectors_.shape[0]),
                "standardize": standardize, "grid": grid},
        "features": {"set": FEATURE_SETS[name][0], "n": int(feats.values.shape[1]), "cache_hits": feats.hits,
                     "computed": feats.computed, "extraction_seconds": feats.seconds, "computed_audio_seconds": feats.audio_seconds},
        "epochs": 0,
        "wall_seconds": time.perf_counter() - start,
        "split": split.describe(),
        "n_train": len(split.train), "n_val": len(split.val), "n_test": len(split.test),
        "skipped_files": len(skipped),
        "parameters": n_params,
    })
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2))
    write_per_class_csv(report["per_class"], out_dir / "per_class_metrics.csv")
    from ser_lightning.plots import plot_confusion_matrix

    plot_confusion_matrix(np.asarray(report["confusion_matrix"]), class_names, out_dir / "confusion_matrix.png",
                          title=f"{s['corpus']} {name} + SVM: test ({split.protocol}; {headline} statistics)")
    metrics = headline_metrics(scores)
    print(f"\n{s['corpus']} / {name} functionals + SVM ({model.kernel}, C={model.C:g}) — {split.describe()}\n"
          f"val UAR {100 * metrics['val/uar']:.1f} %, test UAR {100 * metrics['test/uar']:.1f} % / WAR {100 * metrics['test/war']:.1f} % "
          f"({headline} statistics)\nrun directory: {out_dir}\n")
    return metrics
