"""From a data config to its usable files and their split, the one way training does it.

Files that cannot be used (not decodable, too short, digital silence) are dropped
*before* the split: the split protocols shuffle whatever rows they are given, so a split
made over all rows and filtered afterwards differs from training's as soon as one file
is unreadable (``random`` splits reshuffle every file). :class:`SERDataModule` and any
other code that has to derive a split from a data config (cross-corpus evaluation of a
config's part) call :func:`derive_split`, so they agree file for file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ser_lightning.data.cache import DecodedAudio, load_or_decode
from ser_lightning.data.corpora import Utterance, read_corpus
from ser_lightning.data.splits import Split, make_split, stratified_subset
from ser_lightning.errors import ConfigError, DataQualityError

log = logging.getLogger(__name__)


@dataclass
class UsableRows:
    """The rows of a corpus with their decoded audio, unusable files set aside.

    Attributes:
        rows: every row read, in reader order; ``audio.wave(i)`` is row ``i``'s waveform.
        audio: decoded waveforms (empty slices for the skipped files).
        skipped: ``{path: reason}`` for the files that cannot be used.
    """

    rows: list[Utterance]
    audio: DecodedAudio
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def good(self) -> list[Utterance]:
        """The usable rows, in reader order."""
        return [r for r in self.rows if r.path not in self.skipped]

    def index_of(self) -> dict[str, int]:
        """Path of a usable row -> its index in :attr:`audio`."""
        return {r.path: i for i, r in enumerate(self.rows) if r.path not in self.skipped}


def read_rows(corpus: str, root: str | Path, gender: str | None = None, reader_args: Mapping | None = None,
              extra_labels: Iterable[str] = ()) -> list[Utterance]:
    """A corpus's rows after the gender filter, read as training reads them.

    Args:
        corpus, root: reader name and its ``data.root``.
        gender: ``"female"``, ``"male"`` or ``None`` (all).
        reader_args: extra keyword arguments of the reader (``data=combined``).
        extra_labels: labels admitted beyond the canonical set (``corpus=manifest`` only).

    Raises:
        ValueError: an unknown ``gender`` or no speaker of that gender.
        CorpusNotFoundError, UnknownLabelError: from the reader.
    """
    if gender not in (None, "female", "male"):
        raise ConfigError(f"data.gender='{gender}' is not allowed; use female, male or null")
    kwargs = {"extra_labels": tuple(extra_labels)} if corpus == "manifest" else {}
    kwargs.update(reader_args or {})
    rows = read_corpus(corpus, root, **kwargs)
    if gender:
        rows = [r for r in rows if r.gender == gender]
        if not rows:
            raise ConfigError(f"data.gender={gender}: no {gender} speakers in {corpus}")
    return rows


def drop_unusable(rows: list[Utterance], sample_rate: int, cache_dir: str | Path | None = None, min_seconds: float = 0.0,
                  max_bad_fraction: float | None = None, name: str = "the corpus", trim: str = "none") -> UsableRows:
    """Decode ``rows`` (or read the waveform cache) and set aside the files that cannot
    be used, each with its reason.

    Args:
        rows: the corpus rows.
        sample_rate: decoding rate in Hz.
        cache_dir: waveform cache folder (``None``: decode into memory).
        min_seconds: files shorter than this (seconds) are set aside.
        max_bad_fraction: stop when more than this fraction of files is set aside
            (``None``: never stop).
        name: the data's name for messages.
        trim: leading/trailing silence trimming of the waves (``data.trim``; a file left
            too short by it is set aside too).

    Raises:
        DataQualityError: more than ``max_bad_fraction`` of the files cannot be used.
    """
    audio = load_or_decode([r.path for r in rows], sample_rate, cache_dir, min_seconds, trim)
    skipped = dict(audio.errors)
    if skipped:
        log.warning("skipped %d of %d files that cannot be used:\n  %s", len(skipped), len(rows), "\n  ".join(skipped.values()))
    if max_bad_fraction is not None and len(skipped) > max_bad_fraction * len(rows):
        raise DataQualityError(
            f"{len(skipped)} of {len(rows)} files of {name} cannot be used "
            f"(more than data.max_bad_fraction={max_bad_fraction}); first: {next(iter(skipped.values()))}")
    return UsableRows(rows, audio, skipped)


def split_usable(good: list[Utterance], protocol: str = "auto", val_fraction: float = 0.15, test_fraction: float = 0.15,
                 seed: int = 0, fold: int = 0, num_folds: int = 5, test_speakers=None, train_speakers=None,
                 subset_fraction: float = 1.0, test_corpus: str | None = None, val_speakers=None) -> Split:
    """:func:`~ser_lightning.data.splits.make_split` of the usable rows, then the
    seeded ``subset_fraction`` of the training part (validation and test unchanged).

    Raises:
        ValueError: see :func:`~ser_lightning.data.splits.make_split` and
            :func:`~ser_lightning.data.splits.stratified_subset`.
    """
    split = make_split(good, protocol=protocol, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                       fold=fold, num_folds=num_folds, test_speakers=test_speakers, train_speakers=train_speakers,
                       test_corpus=test_corpus, val_speakers=val_speakers)
    if subset_fraction < 1.0:
        n_all = len(split.train)
        split.train = stratified_subset(split.train, subset_fraction, seed)
        log.info("data.subset_fraction=%g: training on %d of %d training clips", subset_fraction, len(split.train), n_all)
    return split


def derive_split(data_cfg: Mapping, sample_rate: int | None = None) -> tuple[Split, UsableRows]:
    """The split a training run with data config ``data_cfg`` makes: read the corpus,
    drop the unusable files, split the rest.

    Use it only where no run recorded the split (a config's part of another corpus);
    a run's own split is read back with
    :func:`~ser_lightning.data.recorded_split.read_recorded_split`.

    Args:
        data_cfg: a resolved ``conf/data`` (``corpus``, ``root``, and optionally the
            split, speaker, reader, ``cache_dir``, ``min_seconds`` and
            ``max_bad_fraction`` settings; missing ones take ``SERDataModule``'s
            defaults).
        sample_rate: decoding rate in Hz (``None``: ``data_cfg``'s).

    Returns:
        ``(split, usable)``: the split and the rows with their audio and skipped files.

    Raises:
        DataQualityError, ValueError, CorpusNotFoundError, UnknownLabelError: as in training.
    """
    from ser_lightning.data.recorded_split import normalize_data_settings

    s = normalize_data_settings(data_cfg)
    rows = read_rows(s["corpus"], data_cfg["root"], s["gender"], s["reader_args"], s["extra_labels"])
    usable = drop_unusable(rows, sample_rate or s["sample_rate"], data_cfg.get("cache_dir"), s["min_seconds"],
                           data_cfg.get("max_bad_fraction", 0.05), s["corpus"], trim=str(data_cfg.get("trim") or "none"))
    split = split_usable(usable.good, s["split"], s["val_fraction"], s["test_fraction"], s["seed"], s["fold"], s["num_folds"],
                         s["test_speakers"], s["train_speakers"], s["subset_fraction"], s["test_corpus"], s["val_speakers"])
    return split, usable
