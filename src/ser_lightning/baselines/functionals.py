"""What the models on utterance functionals share: the data (openSMILE functionals, or a
frozen encoder's utterance embeddings with ``features=encoder``, of the usable files; the
split; the run directory's split records), the standardisation and the scoring of the saved
model by the one scorer into ``metrics.json``.

Used by the SVM baseline (:mod:`ser_lightning.baselines.svm`, ``model=svm``) and the MLP /
linear head trained by the Lightning loop (:mod:`ser_lightning.baselines.mlp`,
``model=mlp``), so the two read the same files, split them the same way, standardise them
the same way and are scored by the same code as every recipe.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from omegaconf import DictConfig, OmegaConf

from ser_lightning.data.corpora import Utterance, write_manifest
from ser_lightning.data.feature_cache import load_or_extract
from ser_lightning.data.recorded_split import data_fingerprint, normalize_data_settings, split_fingerprint, write_split_metadata
from ser_lightning.data.usable import drop_unusable, read_rows, split_usable
from ser_lightning.errors import DataQualityError
from ser_lightning.evaluation.run_scoring import calibration_report, headline_metrics, score_run, scoring_report
from ser_lightning.inference.functionals import SCORING, FunctionalsPredictor
from ser_lightning.labels import sort_labels
from ser_lightning.metrics import write_per_class_csv
from ser_lightning.data.utterance_features import KINDS, encoder_record, utterance_features
from ser_lightning.transforms.opensmile_features import FEATURE_SETS

log = logging.getLogger(__name__)

#: ``model.standardize`` values: the training part's statistics; each speaker's own; each
#: corpus's own (a test corpus then by its input set's statistics, or the training ones).
STANDARDIZE = ("training", "speaker", "corpus")


def functionals_config_problems(cfg: DictConfig, model: str) -> list[str]:
    """The problems of ``cfg`` every functionals model shares (features, standardisation, trim),
    one line each (the caller raises one :class:`~ser_lightning.errors.ConfigError` with its own)."""
    problems = []
    kind = OmegaConf.select(cfg, "features.kind")
    if kind not in KINDS:
        problems.append(f"features={kind}: model={model} takes utterance functionals; use features=egemaps, compare or encoder")
    if cfg.model.get("standardize") not in STANDARDIZE:
        problems.append(f"model.standardize={cfg.model.get('standardize')}: allowed {list(STANDARDIZE)}")
    if str(OmegaConf.select(cfg, "data.trim") or "none") != "none":
        problems.append(f"data.trim={OmegaConf.select(cfg, 'data.trim')}: model={model} takes the functionals of the whole, untrimmed file")
    return problems


def _device(cfg: DictConfig) -> str:
    """Where an encoder embedding runs: ``features.device``, else CUDA when available."""
    import torch

    return str(OmegaConf.select(cfg, "features.device") or ("cuda" if torch.cuda.is_available() else "cpu"))


def stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, std)`` over rows of ``[n, n_features]``, a zero std replaced by 1 (a constant feature stays 0)."""
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
        self.training_stats = stats(train)

    def __call__(self, x: np.ndarray, row_stats: list[tuple[np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
        """``x`` standardised by ``row_stats`` (one ``(mean, std)`` per row) or, when ``None``, the training statistics."""
        if row_stats is None:
            mean, std = self.training_stats
            return (x - mean) / std
        return (x - np.stack([m for m, _ in row_stats])) / np.stack([s for _, s in row_stats])


@dataclass
class FunctionalsData:
    """The functionals of a run's usable files and their split.

    Attributes:
        parts: ``train``/``val``/``test`` -> namespace with ``rows``, ``x`` (``[n, n_features]``
            float64 raw functionals), ``y`` (``[n]`` class indices), ``speakers``, ``paths``, ``corpora``.
        split: the :class:`~ser_lightning.data.splits.Split`.
        class_names: sorted class names.
        fingerprint: the split fingerprint.
        feature_set: ``egemaps``, ``compare`` or ``encoder``.
        sample_rate: Hz.
        corpus: the data config's corpus name.
        n_features: 88, 6,373, or the encoder embedding's size (Whisper base: 4,096).
        skipped: path -> reason of every file left out.
        extraction: cache hits, computed files, seconds (for ``metrics.json``).
        record: the ``features`` entry a checkpoint stores (kind, level, names or the encoder's record).
        extractor: the utterance feature extractor (handed to the scorer: an encoder is loaded once).
        memo: ``sha1 of each wave's bytes -> functionals`` for the scorer (no second extraction).
        waveform_of: ``rows -> (i -> wave [time] float32)`` as the scorer reads waves.
    """

    parts: dict
    split: object
    class_names: list[str]
    fingerprint: str
    feature_set: str
    sample_rate: int
    corpus: str
    n_features: int
    skipped: dict
    extraction: dict
    record: dict
    extractor: object
    memo: dict
    waveform_of: object
    data_settings: dict

    def standardized(self, standardizer: Standardizer) -> dict[str, np.ndarray]:
        """The training and validation parts standardised: ``training``: by the training
        part's statistics; ``speaker`` (``corpus``): each speaker (corpus) by their own
        statistics over their files of that part (a training speaker's validation
        utterances, SAVEE, by their validation statistics; labels never used)."""
        out = {}
        for name in ("train", "val"):
            p = self.parts[name]
            if standardizer.mode == "training":
                out[name] = standardizer(p.x)
                continue
            groups = p.corpora if standardizer.mode == "corpus" else p.speakers
            per = {g: stats(p.x[[i for i, s in enumerate(groups) if s == g]]) for g in dict.fromkeys(groups)}
            out[name] = standardizer(p.x, [per[g] for g in groups])
        return out


def prepare_functionals(cfg: DictConfig) -> FunctionalsData:
    """Read the corpus of ``cfg.data``, drop unusable files (decode as training decodes,
    openSMILE errors), compute or load the functionals of ``cfg.features.kind``, split the
    usable files with the data config's split, and write ``config.yaml``, ``splits/`` and
    ``skipped_files.csv`` into ``cfg.paths.output_dir``.

    Raises:
        DataQualityError: more than ``data.max_bad_fraction`` of the files unusable.
    """
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    s = normalize_data_settings(data_cfg)
    name = str(cfg.features.kind)
    trim = str(data_cfg.get("trim") or "none")
    rows = read_rows(s["corpus"], data_cfg["root"], s["gender"], s["reader_args"], s["extra_labels"])
    usable = drop_unusable(rows, s["sample_rate"], data_cfg.get("cache_dir"), s["min_seconds"], None, s["corpus"], trim=trim)
    extractor = utterance_features(OmegaConf.to_container(cfg.features, resolve=True), device=_device(cfg))
    feats = load_or_extract([r.path for r in rows], usable.audio, extractor, "functionals",
                            OmegaConf.select(cfg, "paths.feature_cache_dir"), trim=trim)
    log.info("%s functionals of %d files: %d cached, %d computed (%.1f s of audio) in %.1f s", name, len(rows),
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
    parts = {}
    for part in ("train", "val", "test"):
        prow: list[Utterance] = getattr(split, part)
        idx = [index[r.path] for r in prow]
        parts[part] = SimpleNamespace(rows=prow, x=feats.values[idx].astype(np.float64), y=np.array([class_names.index(r.label) for r in prow]),
                                      speakers=[r.speaker for r in prow], paths=[r.path for r in prow], corpora=[r.corpus for r in prow])
    log.info("split %s (fingerprint %s)", split.describe(), fingerprint)
    # the functionals computed above, handed to the scorer (keyed by each wave's bytes) instead of being extracted again
    memo = {}
    for path, i in index.items():
        if path not in skipped:
            memo[hashlib.sha1(np.ascontiguousarray(usable.audio.wave(i), dtype=np.float32).tobytes()).hexdigest()] = feats.values[i]
    return FunctionalsData(
        parts=parts, split=split, class_names=class_names, fingerprint=fingerprint, feature_set=name,
        sample_rate=int(s["sample_rate"]), corpus=str(s["corpus"]), n_features=int(feats.values.shape[1]), skipped=skipped,
        extractor=extractor, record=encoder_record(extractor) if name == "encoder" else extractor.record(),
        extraction={"set": FEATURE_SETS[name][0] if name in FEATURE_SETS else extractor.version, "n": int(feats.values.shape[1]), "cache_hits": feats.hits, "computed": feats.computed,
                    "extraction_seconds": feats.seconds, "computed_audio_seconds": feats.audio_seconds},
        memo=memo, waveform_of=lambda part_rows: (lambda i: usable.audio.wave(index[part_rows[i].path])),
        data_settings=data_fingerprint(data_cfg))


def score_functionals_run(cfg: DictConfig, data: FunctionalsData, ckpt: Path, title: str, extra: dict, start: float) -> dict[str, float]:
    """Score the saved model ``ckpt`` (``svm.pt`` or the MLP's ``best.ckpt``) on the
    validation and test parts by the one scorer (:func:`~ser_lightning.evaluation.run_scoring.score_run`
    with a :class:`~ser_lightning.inference.functionals.FunctionalsPredictor`, what ``eval.py``
    and ``predict.py`` load), calibrated on validation (``cfg.calibration``); write
    ``metrics.json`` (the scoring keys, ``extra`` and the data keys), ``per_class_metrics.csv``,
    ``confusion_matrix.png``, ``reliability_diagram.png``, ``risk_coverage.png``.

    Args:
        title: e.g. ``"egemaps + SVM"`` (figures and the printed summary).
        extra: model-specific ``metrics.json`` keys (``best_val_uar``, ``best_checkpoint``,
            ``epochs``, ``parameters``, ...).
        start: ``time.perf_counter()`` when the run started (``metrics.json``'s ``wall_seconds``).

    Returns:
        The headline ``val/*`` and ``test/*`` metrics.
    """
    out_dir = Path(cfg.paths.output_dir)
    predictor = FunctionalsPredictor.from_checkpoint(ckpt, calibration="none", memo=data.memo, extractor=data.extractor)
    dm = SimpleNamespace(split=data.split, class_names=data.class_names, split_fingerprint=data.fingerprint, waveform_of=data.waveform_of)
    scoring_cfg = OmegaConf.merge(cfg, {"scoring": SCORING})
    scores = score_run(ckpt, dm, scoring_cfg, predictor=predictor)
    calib = calibration_report(scores, out_dir, f"{data.corpus} {title}")
    report = scoring_report(scoring_cfg, dm, scores, calib)
    report.update({
        **extra,
        "features": data.extraction,
        "split": data.split.describe(),
        "n_train": len(data.split.train), "n_val": len(data.split.val), "n_test": len(data.split.test),
        "skipped_files": len(data.skipped),
        "wall_seconds": time.perf_counter() - start,
    })
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2))
    write_per_class_csv(report["per_class"], out_dir / "per_class_metrics.csv")
    from ser_lightning.plots import plot_confusion_matrix

    headline = scores["test"]["mode"]
    plot_confusion_matrix(np.asarray(report["confusion_matrix"]), data.class_names, out_dir / "confusion_matrix.png",
                          title=f"{data.corpus} {title}: test ({data.split.protocol}; {headline} statistics)")
    metrics = headline_metrics(scores)
    print(f"\n{data.corpus} / {title} — {data.split.describe()}\n"
          f"val UAR {100 * metrics['val/uar']:.1f} %, test UAR {100 * metrics['test/uar']:.1f} % / WAR {100 * metrics['test/war']:.1f} % "
          f"({headline} statistics)\nrun directory: {out_dir}\n")
    return metrics
