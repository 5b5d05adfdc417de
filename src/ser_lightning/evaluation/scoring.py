"""Scoring labelled utterances: one part of a split, one checkpoint (or ensemble), one policy.

Every figure the project reports comes through :func:`score_utterances`: the test (and
validation report) after training, ``eval.py``, ensembles of runs. It hands the audio to
:meth:`ser_lightning.inference.predictor.Predictor.predict`, the same call ``predict.py`` makes,
so a file scored here and the same file given to ``predict.py`` with the same scoring
policy and speaker statistics get the same probabilities.

What a figure assumed at test time is named by its *test-time statistics* mode
(speaker-normalised models, ``features.normalize=speaker``, need a speaker's feature
mean and standard deviation):

- ``transductive``: each test speaker's statistics over all of that speaker's scored
  recordings, the one being scored included (the usual speaker-normalisation protocol,
  Busso et al., 2013; it assumes a batch of the speaker's speech before any decision);
- ``enrol<k>`` (``enrol4``, ``enrol8``): statistics from ``k`` of the speaker's
  recordings drawn at random (seeded, label-blind), which are then left out of scoring:
  what a user gets with ``predict.py enrol=<k clips of the speaker>``;
- ``training``: the training speakers' pooled statistics stored in the checkpoint;
  needs nothing of the speaker (``predict.py``'s default);
- ``inputset``: each corpus's statistics over all of its scored recordings (no labels, no
  speaker ids): a new setting's unlabelled recordings, what ``predict.py
  speaker_stats=inputs`` takes from a folder of the user's own recordings; at least
  :data:`~ser_lightning.inference.functionals.MIN_INPUT_SET` per corpus;
- ``utterance``: a model trained with per-utterance normalisation needs no statistics.

For a model without speaker normalisation, ``enrol<k>`` only draws and leaves out the
``k`` recordings per speaker (no statistics); that is what ``adapt="bn"`` needs.

``adapt="bn"`` (AdaBN, :mod:`ser_lightning.inference.adaptation`) re-estimates the model's
BatchNorm statistics on the enrolment recordings of an ``enrol<k>`` mode (per speaker, or
pooled over the part with ``adapt_scope="corpus"``), as ``predict.py adapt=bn enrol=...``
does; its scores are reported as ``enrol<k>+bn``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ser_lightning.errors import ConfigError
from ser_lightning.metrics import confusion_scores, war_uar

#: Test-time statistics modes reported for a speaker-normalised model, in table order.
SPEAKER_MODES = ("transductive", "enrol4", "enrol8", "training")
#: The one mode of a model without speaker normalisation.
UTTERANCE_MODE = "utterance"
#: Statistics of each corpus's scored recordings together (a new setting's input set).
INPUT_SET_MODE = "inputset"


def parse_stats_mode(mode: str) -> tuple[str, int | None]:
    """``"enrol8"`` -> ``("enrol", 8)``; ``"training"`` -> ``("training", None)``.

    Raises:
        ValueError: an unknown mode, or ``enrol`` without a positive count.
    """
    match = re.fullmatch(r"enrol(\d+)", mode)
    if match and int(match.group(1)) > 0:
        return "enrol", int(match.group(1))
    if mode in ("transductive", "training", INPUT_SET_MODE, UTTERANCE_MODE):
        return mode, None
    raise ConfigError(f"test-time statistics '{mode}' is unknown; allowed: transductive, training, enrol<k> (e.g. enrol8), "
                     f"{INPUT_SET_MODE}, {UTTERANCE_MODE}")


def modes_for(predictor, modes: list[str] | tuple[str, ...] | None = None, headline: str = "training") -> tuple[list[str], str]:
    """The statistics modes to score ``predictor``'s model under, and the headline one.

    Args:
        modes: for a speaker-normalised model, the modes to report (default
            :data:`SPEAKER_MODES`); a model without speaker normalisation has only ``utterance``.
        headline: the mode behind the headline scores (``test_stats``) of a
            speaker-normalised model; added to the modes when missing.

    Returns:
        ``(modes, headline mode)``.

    Raises:
        ConfigError: an unknown mode.
    """
    if not predictor.speaker_normalized:
        return [UTTERANCE_MODE], UTTERANCE_MODE
    modes = [m for m in (modes or SPEAKER_MODES) if m != UTTERANCE_MODE]
    for mode in (*modes, headline):
        parse_stats_mode(mode)
    return modes + ([headline] if headline not in modes else []), headline


#: Suffix of a statistics mode scored with BatchNorm statistics adapted on its enrolment recordings.
ADAPTED_SUFFIX = "+bn"


def adapted_modes(predictor, report_stats: list[str] | None, test_stats: str, adapt: str = "none") -> tuple[list[str], str]:
    """The modes ``eval.py``, the scoring after training and ensembles score, and the headline mode, with ``adapt``.

    ``adapt="none"``: :func:`~ser_lightning.evaluation.scoring.modes_for`. ``adapt="bn"``:
    each ``enrol<k>`` mode of ``report_stats`` and ``test_stats`` is scored twice, as
    ``enrol<k>`` (unadapted) and ``enrol<k>+bn`` (adapted on the same enrolment
    recordings, the same utterances scored), and ``test_stats=enrol<k>`` makes
    ``enrol<k>+bn`` the headline. A model without speaker normalisation keeps
    ``utterance`` (all files, unadapted) and gets its ``enrol<k>`` modes too: for it they
    only draw the enrolment recordings (no statistics).

    Raises:
        ConfigError: an unknown mode or ``adapt``; ``adapt="bn"`` without any ``enrol<k>`` mode.
    """
    from ser_lightning.inference.adaptation import check_adapt

    modes, headline = modes_for(predictor, report_stats, test_stats)
    if check_adapt(adapt) == "none":
        return modes, headline
    requested = [*(report_stats or SPEAKER_MODES), test_stats]
    enrol = list(dict.fromkeys(m for m in requested if parse_stats_mode(m)[0] == "enrol"))
    if not enrol:
        raise ConfigError(f"adapt=bn re-estimates the BatchNorm statistics on k enrolment recordings per speaker: "
                          f"report_stats or test_stats must name an enrol<k> mode (e.g. enrol8); got {requested}")
    modes = list(dict.fromkeys([*modes, *enrol, *(m + ADAPTED_SUFFIX for m in enrol)]))
    return modes, test_stats + ADAPTED_SUFFIX if test_stats in enrol else headline


def enrolment_choice(paths: list[str], k: int, seed: int, speaker: str) -> list[int]:
    """Indices of the ``k`` enrolment recordings of one speaker among ``paths``.

    Label-blind and reproducible: the draw depends only on the sorted paths, the seed
    and the speaker id (not on the process or the order of speakers). At least one
    recording is left to score: a speaker with ``n <= k`` recordings enrols ``n - 1``.
    """
    n = len(paths)
    k = max(0, min(k, n - 1))
    order = sorted(range(n), key=lambda i: paths[i])
    rng = np.random.default_rng([seed, zlib.crc32(speaker.encode())])
    return sorted(order[j] for j in rng.choice(n, size=k, replace=False)) if k else []


@dataclass
class ScoredPart:
    """Labelled utterances scored by one model under one statistics mode.

    Attributes:
        mode: the test-time statistics mode.
        paths, speakers, corpora: one entry per scored utterance.
        targets: ``[n]`` true class indices.
        probabilities: ``[n, n_classes]`` class probabilities.
        enrolled: speaker -> paths used for that speaker's statistics and left out
            (``enrol<k>`` only).
        errors: path -> why it could not be scored (left out of the scores).
        logits: per utterance, ``[n_windows, n_classes]`` raw logits of its classified
            windows (calibration is fitted on them and applied to them).
        temperature: the temperature ``probabilities`` were computed with.
        allowed: ``[n_classes]`` bool, the classes the arg-max was restricted to
            (``None``: all; see :meth:`restricted`).
    """

    mode: str
    paths: list[str]
    speakers: list[str]
    corpora: list[str]
    targets: np.ndarray
    probabilities: np.ndarray
    enrolled: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    logits: list[np.ndarray] = field(default_factory=list, repr=False)
    temperature: float = 1.0
    allowed: np.ndarray | None = None

    def at_temperature(self, temperature: float) -> "ScoredPart":
        """The same utterances scored with another calibration temperature: each
        utterance's probabilities are the mean of ``softmax(window logits / T)``, computed
        as :class:`~ser_lightning.inference.predictor.Predictor` computes them (the model is not run again)."""
        from ser_lightning.inference.calibration import calibrated_probabilities

        probs = np.array([calibrated_probabilities(lg, temperature, self.allowed).mean(axis=0) for lg in self.logits], dtype=np.float64)
        return replace(self, probabilities=probs.reshape(self.probabilities.shape), temperature=float(temperature))

    def restricted(self, allowed: np.ndarray | None) -> "ScoredPart":
        """The same utterances with the softmax (so the arg-max) restricted to the
        classes in ``allowed`` (``[n_classes]`` bool; ``None``: all), as a
        :class:`~ser_lightning.inference.predictor.Predictor` built with ``classes=``
        scores them (cross-corpus scoring on the target corpus's label set; the model
        is not run again)."""
        return replace(self, allowed=None if allowed is None else np.asarray(allowed, dtype=bool)).at_temperature(self.temperature)

    def window_logits(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(logits [n_windows, n_classes], targets [n_windows], utterance [n_windows])``:
        every classified window with its utterance's label and index (a temperature is
        fitted on the utterances' mean window probabilities, what a user is given:
        :func:`ser_lightning.evaluation.calibration.fit_calibration` with ``groups``)."""
        if not self.logits:
            raise ValueError("nothing was scored")
        pairs = list(zip(self.logits, self.targets, strict=True))
        return (np.concatenate(self.logits), np.concatenate([np.full(len(lg), t) for lg, t in pairs]),
                np.concatenate([np.full(len(lg), i) for i, (lg, _) in enumerate(pairs)]))

    def fit_calibration(self, method: str = "auto", fitted_on: str = "val", training_speakers: set[str] | None = None) -> dict:
        """A temperature fitted on these utterances' window logits so that their mean window
        probabilities (what :class:`~ser_lightning.inference.Predictor` gives a user) have
        the lowest NLL (:func:`ser_lightning.evaluation.calibration.fit_calibration` with ``groups``).

        Args:
            method: ``temperature``, ``none``, or ``auto``: ``temperature`` when none of
                these utterances' speakers is in ``training_speakers``, else ``none``. A
                model is confident on the voices it was trained on; a temperature fitted
                on held-out utterances of those voices (SAVEE's leave-one-speaker-out
                validation) sharpens it, and new speakers then get over-confident
                probabilities (measured: pooled test ECE 11 % -> 26 %, docs/RESULTS.md).
            fitted_on: the part's name, recorded.
            training_speakers: the speakers the model was trained on (for ``auto``).

        Raises:
            ValueError: an unknown method.
        """
        from ser_lightning.evaluation.calibration import fit_calibration

        logits, targets, utterance = self.window_logits()
        if method != "auto":
            return fit_calibration(logits, targets, method=method, fitted_on=fitted_on, groups=utterance)
        shared = sorted(set(self.speakers) & set(training_speakers or ()))
        record = fit_calibration(logits, targets, method="none" if shared else "temperature", fitted_on=fitted_on, groups=utterance)
        if shared:
            record["note"] = (f"not fitted (calibration=auto): the {fitted_on} speakers are training speakers "
                              f"({', '.join(shared[:4])}{' ...' if len(shared) > 4 else ''}); a temperature fitted on them "
                              f"does not carry over to new speakers")
        return record

    @property
    def predicted(self) -> np.ndarray:
        """``[n]`` arg-max class indices."""
        return self.probabilities.argmax(axis=1) if len(self.paths) else np.zeros(0, np.int64)

    def confusion(self, mask: np.ndarray | None = None) -> np.ndarray:
        """``[n_classes, n_classes]`` counts (rows true), of the rows in ``mask`` (default all)."""
        n = self.probabilities.shape[1]
        t, p = self.targets, self.predicted
        if mask is not None:
            t, p = t[mask], p[mask]
        return np.bincount(t * n + p, minlength=n * n).reshape(n, n)

    def report(self) -> dict:
        """``war``, ``uar``, ``f1_macro`` (fractions; :mod:`ser_lightning.metrics`'s one
        definition), ``n``, ``confusion_matrix`` and ``per_speaker_confusion``.

        Raises:
            ValueError: nothing was scored.
        """
        cm = self.confusion()
        speakers = np.asarray(self.speakers)
        out = {**confusion_scores(cm), "n": len(self.paths),
               "confusion_matrix": cm.tolist(),
               "per_speaker_confusion": {s: self.confusion(speakers == s).tolist() for s in sorted(set(self.speakers))}}
        if self.enrolled:
            out["enrolled_per_speaker"] = {s: len(v) for s, v in sorted(self.enrolled.items())}
        if self.errors:
            out["n_errors"] = len(self.errors)
        return out


def score_utterances(predictor, paths: list[str], speakers: list[str], targets: list[int], wave: Callable[[int], np.ndarray],
                     mode: str, corpora: list[str] | None = None, seed: int = 0, batch_size: int = 32,
                     adapt: str = "none", adapt_scope: str = "speaker") -> ScoredPart:
    """Score decoded utterances with ``predictor`` (its scoring policy) under one
    statistics mode.

    Args:
        predictor: a :class:`~ser_lightning.inference.predictor.Predictor`.
        paths, speakers: one per utterance (speaker ids group the statistics).
        targets: true class index of each utterance (indices of ``predictor.class_names``).
        wave: ``i -> [time]`` float32 waveform of utterance ``i`` at
            ``predictor.sample_rate`` (decoded once, e.g. from the waveform cache).
        mode: see the module docstring; ``enrol<k>+bn`` (a mode :func:`adapted_modes`
            names) is ``enrol<k>`` with ``adapt="bn"``.
        corpora: corpus of each utterance (for per-corpus scores); default ``""``.
        seed: seed of the enrolment draw.
        batch_size: windows per forward pass.
        adapt: ``none`` or ``bn``: BatchNorm statistics re-estimated on the enrolment
            recordings (``enrol<k>`` modes only) before scoring the other recordings
            (:meth:`~ser_lightning.inference.predictor.Predictor.adapted`).
        adapt_scope: ``speaker`` (each speaker's enrolment recordings adapt the model
            scoring that speaker, as ``predict.py adapt=bn enrol=...``) or ``corpus``
            (the enrolment recordings of all speakers of the part adapt one model).

    Returns:
        :class:`ScoredPart` over the utterances that were scored (enrolment recordings
        and undecodable inputs left out); its ``mode`` is ``mode + "+bn"`` when adapted.

    Raises:
        ValueError: an unknown mode, a statistics mode for a model that has none, or
            ``adapt=bn`` without an ``enrol<k>`` mode.
    """
    from ser_lightning.inference.adaptation import check_adapt

    if mode.endswith(ADAPTED_SUFFIX):
        mode, adapt = mode.removesuffix(ADAPTED_SUFFIX), "bn"
    kind, k = parse_stats_mode(mode)
    if check_adapt(adapt) == "bn" and kind != "enrol":
        raise ConfigError(f"adapt=bn re-estimates the BatchNorm statistics on enrolment recordings, which only an enrol<k> "
                          f"mode draws (and leaves out of scoring); with '{mode}' they would come from the scored "
                          f"recordings themselves or from nowhere")
    if kind != "enrol" and (kind == UTTERANCE_MODE) == predictor.speaker_normalized:
        raise ConfigError(f"statistics mode '{mode}' does not apply to a model with features.normalize="
                         f"{'speaker' if predictor.speaker_normalized else 'utterance'}")
    if adapt_scope not in ("speaker", "corpus"):
        raise ConfigError(f"adapt_scope='{adapt_scope}' is unknown; allowed: speaker, corpus")
    corpora = corpora or [""] * len(paths)
    by_speaker: dict[str, list[int]] = {}
    for i, s in enumerate(speakers):
        by_speaker.setdefault(s, []).append(i)
    stats: list | None = None
    # enrol<k>: k recordings per speaker, drawn label-blind and left out of scoring; their
    # statistics normalise a speaker-normalised model, and adapt=bn adapts on them
    enrolled_idx = {s: [idx[j] for j in enrolment_choice([paths[i] for i in idx], k, seed, s)]
                    for s, idx in by_speaker.items()} if kind == "enrol" else {}
    enrolled = {s: [paths[i] for i in source] for s, source in enrolled_idx.items()}
    left_out = {i for source in enrolled_idx.values() for i in source}
    scored = [i for i in range(len(paths)) if i not in left_out]
    speaker_stats: dict[str, tuple[torch.Tensor, torch.Tensor] | None] = {}
    if predictor.speaker_normalized and kind == INPUT_SET_MODE:
        per_utterance = _input_set_stats(predictor, corpora, wave)
        stats = [per_utterance[i] for i in scored]
    elif predictor.speaker_normalized:
        for s, idx in by_speaker.items():
            if kind == "training":
                speaker_stats[s] = predictor.training_stats
                continue
            try:
                speaker_stats[s] = predictor.statistics(wave(i) for i in enrolled_idx.get(s, idx))
            except ValueError:  # no audio at all: its utterances fail below
                speaker_stats[s] = None
        stats = [speaker_stats[speakers[i]] for i in scored]
    if adapt == "bn":
        predictions = _adapted_predictions(predictor, paths, speakers, wave, scored, enrolled_idx, speaker_stats, adapt_scope, batch_size)
        mode = f"{mode}+bn"
    else:
        predictions = predictor.predict([(wave(i), predictor.sample_rate) for i in scored], batch_size=batch_size, stats=stats)
    ok = [j for j, p in enumerate(predictions) if p.error is None and p.probabilities]
    ok_set = set(ok)  # the others: undecodable, or silent throughout (no window classified)
    errors = {paths[scored[j]]: p.error or p.note or "no prediction" for j, p in enumerate(predictions) if j not in ok_set}
    classes = predictor.class_names
    probs = np.array([[predictions[j].probabilities[c] for c in classes] for j in ok], dtype=np.float64).reshape(len(ok), len(classes))
    keep = [scored[j] for j in ok]
    return ScoredPart(mode, [paths[i] for i in keep], [speakers[i] for i in keep], [corpora[i] for i in keep],
                      np.asarray([targets[i] for i in keep], dtype=np.int64), probs, enrolled, errors,
                      [predictions[j].logits for j in ok], predictor.temperature, predictor.allowed)


def _input_set_stats(predictor, corpora: list[str], wave) -> list:
    """Per utterance, the statistics of its corpus's recordings together (``inputset``);
    ``None`` (its utterances fail, a warning names the corpus) for a corpus with fewer
    recordings than the input-set minimum, so the other corpora are still scored."""
    import logging

    from ser_lightning.inference.functionals import MIN_INPUT_SET, input_set_message

    by_corpus: dict[str, list[int]] = {}
    for i, c in enumerate(corpora):
        by_corpus.setdefault(c, []).append(i)
    out: list = [None] * len(corpora)
    for corpus, idx in by_corpus.items():
        if len(idx) < MIN_INPUT_SET:
            logging.getLogger(__name__).warning("inputset statistics: corpus '%s' is not scored: %s", corpus, input_set_message(len(idx)))
            continue
        try:
            group = predictor.statistics(wave(i) for i in idx)
        except ValueError:
            group = None
        for i in idx:
            out[i] = group
    return out


def _adapted_predictions(predictor, paths, speakers, wave, scored, enrolled, speaker_stats, scope, batch_size) -> list:
    """Predictions of the ``scored`` utterances (indices), each by ``predictor`` adapted (AdaBN) on
    the enrolment recordings (``enrolled``: speaker -> indices) of its speaker (``scope="speaker"``) or of the whole part
    (``"corpus"``); a group without a usable enrolment window gets errors."""
    from ser_lightning.errors import SERUserError
    from ser_lightning.inference.outputs import Prediction

    groups = {s: [s] for s in dict.fromkeys(speakers)} if scope == "speaker" else {"": list(dict.fromkeys(speakers))}
    normalized = predictor.speaker_normalized
    out: dict[int, object] = {}
    for members in groups.values():
        targets = [i for i in scored if speakers[i] in members]
        if not targets:
            continue
        enrol = [i for s in members for i in enrolled.get(s, [])]
        try:
            adapted = predictor.adapted([(wave(i), predictor.sample_rate) for i in enrol], batch_size=batch_size,
                                        stats=[speaker_stats[speakers[i]] for i in enrol] if normalized else None)
        except SERUserError as exc:
            out.update({i: Prediction(paths[i], error=str(exc)) for i in targets})
            continue
        predictions = adapted.predict([(wave(i), predictor.sample_rate) for i in targets], batch_size=batch_size,
                                      stats=[speaker_stats[speakers[i]] for i in targets] if normalized else None)
        out.update(zip(targets, predictions, strict=True))
    return [out[i] for i in scored]


def by_group(part: ScoredPart, groups: list[str]) -> dict[str, dict]:
    """WAR, UAR and count per group (e.g. per corpus of a combined run), UAR over the
    classes present in the group (a corpus without some class is not penalised for it).

    Args:
        groups: one group name per scored utterance of ``part``.
    """
    out = {}
    groups_arr = np.asarray(groups)
    for g in sorted(set(groups)):
        war, uar = war_uar(part.confusion(groups_arr == g))
        out[g] = {"war": war, "uar": uar, "n": int((groups_arr == g).sum())}
    return out
