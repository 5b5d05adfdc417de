"""Train/validation/test splits of a corpus manifest.

Protocols (``data.split``):

- ``random``: stratified random split of utterances (the published TESS protocol; the
  same speakers appear in all parts, so it measures speaker-dependent accuracy).
- ``speaker``: speaker-independent split; disjoint speakers in train, val and test.
- ``kfold``: k-fold over speakers; fold ``k`` tests on speaker group ``k`` and
  validates on group ``k+1`` (mod k), so val speakers are never test speakers.
- ``loso``: leave-one-speaker-out; fold ``k`` tests on the k-th speaker (sorted ids)
  and validates on the next one.
- ``cross``: cross-speaker: train on ``train_speakers`` (all others when not given),
  test on ``test_speakers``; validation is a stratified random part of the training
  speakers' utterances, so it works with 2 speakers (TESS: train OAF, test YAF), or
  ``val_speakers`` when given (held out of training).
- ``corpus``: leave-one-corpus-out (LOCO, ``data=combined``): test on every utterance of
  ``test_corpus``, train on the other corpora; validation holds out speakers of each
  training corpus with 3 or more speakers (so model selection and calibration see
  voices not trained on), see :func:`corpus_split`.
- ``auto``: ``speaker`` when the corpus has 3 or more speakers, else ``random``.

With rows from several corpora (``data=combined``), ``speaker`` splits each corpus on
its own and merges the parts, so every corpus has held-out test speakers (see
:func:`per_corpus_speaker_split`).

Every split is a pure function of the manifest and the seed, so it is reproducible;
the run directory keeps the three manifests.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from ser_lightning.data.corpora import Utterance
from ser_lightning.errors import ConfigError

SPLIT_PROTOCOLS = ("auto", "random", "speaker", "kfold", "loso", "cross", "corpus")


@dataclass
class Split:
    """The three parts of a split and the protocol that made them."""

    train: list[Utterance]
    val: list[Utterance]
    test: list[Utterance]
    protocol: str

    def describe(self) -> str:
        """One line: protocol, sizes and the held-out speakers (for logs and result tables)."""
        def spk(rows: list[Utterance]) -> str:
            ids = sorted({r.speaker for r in rows})
            return ",".join(ids) if len(ids) <= 8 else f"{len(ids)} speakers"

        text = (
            f"{self.protocol}: train {len(self.train)}, val {len(self.val)}, test {len(self.test)}"
        )
        if self.protocol != "random":
            text += f" | val speakers {spk(self.val)} | test speakers {spk(self.test)}"
        return text


def speakers_of(rows: list[Utterance]) -> list[str]:
    """Sorted distinct speaker ids of ``rows``."""
    return sorted({r.speaker for r in rows})


def _parts_counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """Sizes of val and test for ``n`` items: at least 1 each, at least 1 left for train."""
    if n < 3:
        raise ConfigError(f"cannot split {n} item(s) into train, val and test: need at least 3")
    n_test = min(max(1, round(n * test_fraction)), n - 2)
    n_val = min(max(1, round(n * val_fraction)), n - n_test - 1)
    return n_val, n_test


def random_split(rows: list[Utterance], val_fraction: float, test_fraction: float, seed: int) -> Split:
    """Stratified random split: every class spread over the parts in proportion.

    Items are shuffled within each class and interleaved across classes, then the first
    ``test`` and next ``val`` items of that sequence are taken, so each part gets the
    class proportions up to rounding and no part is ever empty.

    Raises:
        ValueError: fewer than 3 utterances.
    """
    rng = random.Random(seed)
    by_label: dict[str, list[Utterance]] = defaultdict(list)
    for r in rows:
        by_label[r.label].append(r)
    queues = []
    for label in sorted(by_label):
        items = sorted(by_label[label], key=lambda r: r.path)
        rng.shuffle(items)
        queues.append(items)
    # Interleave by relative position in its class, so small classes are spread evenly.
    keyed = [(i / len(q), rng.random(), r) for q in queues for i, r in enumerate(q)]
    ordered = [r for _, _, r in sorted(keyed, key=lambda t: (t[0], t[1]))]
    n_val, n_test = _parts_counts(len(ordered), val_fraction, test_fraction)
    return Split(
        train=ordered[n_test + n_val:],
        val=ordered[n_test:n_test + n_val],
        test=ordered[:n_test],
        protocol="random",
    )


def _by_speakers(rows: list[Utterance], val_spk: set[str], test_spk: set[str], protocol: str) -> Split:
    return Split(
        train=[r for r in rows if r.speaker not in val_spk and r.speaker not in test_spk],
        val=[r for r in rows if r.speaker in val_spk],
        test=[r for r in rows if r.speaker in test_spk],
        protocol=protocol,
    )


def speaker_split(rows: list[Utterance], val_fraction: float, test_fraction: float, seed: int) -> Split:
    """Speaker-independent split: speakers are shuffled with ``seed`` and divided.

    Speakers are stratified by gender when genders are known (genders alternate in the
    shuffled order), so val and test are not all one gender by chance.

    Raises:
        ValueError: fewer than 3 speakers.
    """
    speakers = speakers_of(rows)
    if len(speakers) < 3:
        raise ValueError(
            f"a speaker-independent split needs at least 3 speakers; this data has {len(speakers)} "
            f"({', '.join(speakers)}). Use data.split=random."
        )
    rng = random.Random(seed)
    gender = {r.speaker: r.gender or "" for r in rows}
    groups: dict[str, list[str]] = defaultdict(list)
    for s in speakers:
        groups[gender[s]].append(s)
    for g in groups.values():
        rng.shuffle(g)
    keyed = [(i / len(g), rng.random(), s) for g in groups.values() for i, s in enumerate(g)]
    order = [s for _, _, s in sorted(keyed)]
    n_val, n_test = _parts_counts(len(order), val_fraction, test_fraction)
    return _by_speakers(rows, set(order[n_test:n_test + n_val]), set(order[:n_test]), "speaker")


def kfold_split(rows: list[Utterance], fold: int, num_folds: int, seed: int) -> Split:
    """Fold ``fold`` of a k-fold cross-validation over speakers.

    Speakers are shuffled with ``seed`` and dealt into ``num_folds`` groups; the fold
    tests on group ``fold``, validates on group ``(fold + 1) % num_folds`` and trains on
    the rest. Every speaker is tested exactly once over the k folds.

    Raises:
        ValueError: ``fold`` outside ``[0, num_folds)`` or fewer speakers than folds
            (or fewer than 3 folds).
    """
    speakers = speakers_of(rows)
    if num_folds < 3:
        raise ConfigError(f"data.num_folds must be >= 3 (train, val and test groups); got {num_folds}")
    if not 0 <= fold < num_folds:
        raise ConfigError(f"data.fold={fold} is out of range: allowed 0..{num_folds - 1}")
    if len(speakers) < num_folds:
        raise ConfigError(f"{num_folds}-fold over speakers needs >= {num_folds} speakers; data has {len(speakers)}")
    rng = random.Random(seed)
    order = list(speakers)
    rng.shuffle(order)
    groups = [order[i::num_folds] for i in range(num_folds)]
    return _by_speakers(rows, set(groups[(fold + 1) % num_folds]), set(groups[fold]), f"kfold{num_folds}-{fold}")


def loso_split(rows: list[Utterance], fold: int) -> Split:
    """Leave-one-speaker-out fold ``fold``: test on the fold-th speaker (sorted ids),
    validate on the next one, train on the others.

    Raises:
        ValueError: ``fold`` outside ``[0, number of speakers)`` or fewer than 3 speakers.
    """
    speakers = speakers_of(rows)
    if len(speakers) < 3:
        raise ConfigError(f"leave-one-speaker-out needs >= 3 speakers; data has {len(speakers)}")
    if not 0 <= fold < len(speakers):
        raise ConfigError(f"data.fold={fold} is out of range for LOSO: allowed 0..{len(speakers) - 1} ({len(speakers)} speakers)")
    test = speakers[fold]
    val = speakers[(fold + 1) % len(speakers)]
    return _by_speakers(rows, {val}, {test}, f"loso-{test}")


def _match_speakers(rows: list[Utterance], wanted: list[str] | tuple[str, ...], key: str) -> set[str]:
    """Speaker ids of ``rows`` named in ``wanted`` (with or without the ``corpus:`` prefix).

    Raises:
        ValueError: a name matches no speaker (the known ids are listed).
    """
    known = speakers_of(rows)
    out = set()
    for name in wanted:
        hits = [s for s in known if s == name or s.split(":", 1)[-1] == str(name)]
        if not hits:
            raise ConfigError(f"data.{key}: speaker '{name}' is not in the data; known: {known}")
        out.update(hits)
    return out


def cross_speaker_split(
    rows: list[Utterance],
    test_speakers: list[str] | tuple[str, ...],
    train_speakers: list[str] | tuple[str, ...] | None,
    val_fraction: float,
    seed: int,
    val_speakers: list[str] | tuple[str, ...] | None = None,
) -> Split:
    """Cross-speaker split: test on ``test_speakers``, train on ``train_speakers``.

    Validation utterances are a stratified random ``val_fraction`` of the training
    speakers' utterances (never from a test speaker), so model selection sees no test
    speaker even when the corpus has only two speakers. With ``val_speakers``,
    validation is all of those speakers' utterances instead, and they are not trained
    on (so validation, and a temperature fitted there, is on voices not trained on).

    Raises:
        ValueError: no test speakers given, an unknown speaker name, or overlapping
            train, validation and test speakers.
    """
    if not test_speakers:
        raise ConfigError("data.split=cross needs data.test_speakers (e.g. [YAF])")
    test = _match_speakers(rows, test_speakers, "test_speakers")
    val = _match_speakers(rows, val_speakers, "val_speakers") if val_speakers else set()
    train = _match_speakers(rows, train_speakers, "train_speakers") if train_speakers else set(speakers_of(rows)) - test - val
    if not train or train & test or val & (train | test):
        raise ConfigError(f"data.split=cross: train speakers {sorted(train)}, validation speakers {sorted(val)} and test speakers "
                          f"{sorted(test)} must be disjoint (and train and test non-empty)")
    name = "cross-" + "+".join(s.split(":", 1)[-1] for s in sorted(train)) + "-to-" + "+".join(s.split(":", 1)[-1] for s in sorted(test))
    if val:
        return Split(train=[r for r in rows if r.speaker in train], val=[r for r in rows if r.speaker in val],
                     test=[r for r in rows if r.speaker in test], protocol=name)
    pool = [r for r in rows if r.speaker in train]
    # random_split's "test" part is the stratified hold-out; its 1-item "val" goes back to train.
    part = random_split(pool, 0.0, val_fraction, seed)
    return Split(train=part.train + part.val, val=part.test, test=[r for r in rows if r.speaker in test], protocol=name)


def per_corpus_speaker_split(rows: list[Utterance], val_fraction: float, test_fraction: float, seed: int) -> Split:
    """Speaker-independent split of each corpus on its own, merged (``data=combined``).

    A corpus with 3 or more speakers gets :func:`speaker_split`; one with 2 speakers
    (TESS; the CREMA-D sample) tests on one of them (chosen with ``seed``) and trains on
    the other, contributing nothing to validation; a corpus with 1 speaker only trains.
    So every test utterance comes from a speaker unseen in training.
    """
    by_corpus: dict[str, list[Utterance]] = defaultdict(list)
    for r in rows:
        by_corpus[r.corpus].append(r)
    train, val, test = [], [], []
    rng = random.Random(seed)
    for corpus in sorted(by_corpus):
        part_rows = by_corpus[corpus]
        speakers = speakers_of(part_rows)
        if len(speakers) >= 3:
            part = speaker_split(part_rows, val_fraction, test_fraction, seed)
            train += part.train
            val += part.val
            test += part.test
        elif len(speakers) == 2:
            held = rng.choice(speakers)
            train += [r for r in part_rows if r.speaker != held]
            test += [r for r in part_rows if r.speaker == held]
        else:
            train += part_rows
    return Split(train=train, val=val, test=test, protocol="speaker-per-corpus")


def corpus_split(rows: list[Utterance], test_corpus: str | None, val_fraction: float, seed: int) -> Split:
    """Leave-one-corpus-out: test on all of ``test_corpus``, train on the other corpora.

    Validation: each training corpus with 3 or more speakers gives the validation part
    of :func:`speaker_split` (``val_fraction`` of its speakers, at least one, chosen with
    ``seed``); corpora with fewer speakers (TESS, the CREMA-D sample) only train. Every
    validation speaker is therefore unseen in training, as every test speaker is, so
    the checkpoint chosen on validation and the temperature fitted there are chosen on
    new voices (the cross-corpus protocol of e.g. Schuller et al., 2010, "Cross-corpus
    acoustic emotion recognition: variances and strategies").

    Raises:
        ConfigError: no ``test_corpus``, a name not among the rows' corpora, or no
            training corpus left, or no training corpus with 3 or more speakers.
    """
    corpora = sorted({r.corpus for r in rows})
    if not test_corpus:
        raise ConfigError(f"data.split=corpus needs data.test_corpus, one of {corpora}")
    if test_corpus not in corpora:
        raise ConfigError(f"data.test_corpus='{test_corpus}' is not among the data's corpora {corpora} "
                          f"(data.reader_args.corpora lists what data=combined reads)")
    if len(corpora) < 2:
        raise ConfigError(f"data.split=corpus needs at least two corpora; the data has {corpora}")
    train, val = [], []
    for corpus in corpora:
        if corpus == test_corpus:
            continue
        part_rows = [r for r in rows if r.corpus == corpus]
        if len(speakers_of(part_rows)) >= 3:
            part = speaker_split(part_rows, val_fraction, 0.0, seed)
            train += part.train + part.test  # speaker_split's 1-speaker "test" share trains here
            val += part.val
        else:
            train += part_rows
    if not val:
        raise ConfigError(f"data.split=corpus: no training corpus of {[c for c in corpora if c != test_corpus]} has 3 or more "
                          f"speakers to validate on")
    return Split(train=train, val=val, test=[r for r in rows if r.corpus == test_corpus], protocol=f"loco-{test_corpus}")


def make_split(
    rows: list[Utterance],
    protocol: str = "auto",
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    fold: int = 0,
    num_folds: int = 5,
    test_speakers: list[str] | tuple[str, ...] | None = None,
    train_speakers: list[str] | tuple[str, ...] | None = None,
    test_corpus: str | None = None,
    val_speakers: list[str] | tuple[str, ...] | None = None,
) -> Split:
    """Split ``rows`` by ``protocol`` (one of :data:`SPLIT_PROTOCOLS`).

    Raises:
        ValueError: unknown protocol, or a protocol the data cannot support.
    """
    if protocol == "auto":
        protocol = "speaker" if len(speakers_of(rows)) >= 3 else "random"
    if protocol == "random":
        return random_split(rows, val_fraction, test_fraction, seed)
    if protocol == "speaker" and len({r.corpus for r in rows}) > 1:
        return per_corpus_speaker_split(rows, val_fraction, test_fraction, seed)
    if protocol == "speaker":
        return speaker_split(rows, val_fraction, test_fraction, seed)
    if protocol == "kfold":
        return kfold_split(rows, fold, num_folds, seed)
    if protocol == "loso":
        return loso_split(rows, fold)
    if protocol == "cross":
        return cross_speaker_split(rows, test_speakers or (), train_speakers, val_fraction, seed, val_speakers)
    if protocol == "corpus":
        return corpus_split(rows, test_corpus, val_fraction, seed)
    raise ConfigError(f"unknown split protocol data.split='{protocol}'; allowed: {list(SPLIT_PROTOCOLS)}")


def stratified_subset(rows: list[Utterance], fraction: float, seed: int) -> list[Utterance]:
    """A seeded, class-stratified share of ``rows`` (for scaling studies and quick runs).

    Each class keeps ``round(fraction * count)`` of its rows (at least 1), drawn with
    ``seed``; the kept rows stay in their original order. Applied to the training part
    only, after the split, so validation and test are the same as with all the data.

    Args:
        rows: utterances (usually ``Split.train``).
        fraction: share to keep, in ``(0, 1]``; 1 returns ``rows`` unchanged.
        seed: random seed of the draw.

    Raises:
        ValueError: ``fraction`` outside ``(0, 1]``.
    """
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"data.subset_fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0:
        return list(rows)
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by_label[r.label].append(i)
    keep: set[int] = set()
    for label in sorted(by_label):
        idx = by_label[label]
        keep.update(rng.sample(idx, max(1, round(fraction * len(idx)))))
    return [r for i, r in enumerate(rows) if i in keep]
