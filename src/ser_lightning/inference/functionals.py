"""Prediction with a model on utterance functionals (the SVM baseline's ``svm.pt``, the
Lightning-trained MLP / linear head's ``best.ckpt`` of ``model=mlp``), and late fusion of such a model with the neural ones.

:class:`FunctionalsPredictor` has the interface of
:class:`~ser_lightning.inference.predictor.Predictor` that the one scorer
(:func:`ser_lightning.evaluation.scoring.score_utterances`), ``eval.py``, ``predict.py`` and
ensembles call (``class_names``, ``sample_rate``, ``speaker_normalized``,
``training_stats``, ``temperature``, ``allowed``, :meth:`~FunctionalsPredictor.statistics`,
:meth:`~FunctionalsPredictor.enrol`, :meth:`~FunctionalsPredictor.predict`), so an SVM or
MLP on functionals is scored by the same code as a CNN. Each input is one whole file: its openSMILE functionals
(:mod:`ser_lightning.transforms.opensmile_features`) are standardised (the training part's
statistics, or a speaker's for ``standardize=speaker``) and classified by
:class:`~ser_lightning.models.svm.SVMHead` or :class:`~ser_lightning.models.mlp.MLPHead`;
the decision values (SVM) or logits (MLP) are the logits, divided by
the temperature fitted on validation.

:class:`FileAverage` averages the (calibrated) class probabilities of several predictors
file by file: late fusion of models that do not share windows (an SVM on whole-file
functionals with a CNN on 3-s windows). For models that share windows it equals the
window-level :class:`~ser_lightning.models.ensemble.ProbabilityAverage`, since a file's
probabilities are the mean over its windows.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from ser_lightning.data.audio import load_audio, to_mono_resampled
from ser_lightning.data.streaming import energy_dbfs
from ser_lightning.errors import AudioDecodeError, CheckpointError, ConfigError
from ser_lightning.inference.calibration import calibrated_probabilities
from ser_lightning.inference.outputs import SILENCE, Prediction, WindowPrediction
from ser_lightning.inference.predictor import SILENCE_DBFS, allowed_classes
from ser_lightning.models.mlp import MLPHead
from ser_lightning.models.svm import SVMHead
from ser_lightning.data.utterance_features import utterance_features

#: How a functionals model scores a file (``metrics.json``'s ``scoring``).
SCORING = "functionals"
#: Fewest recordings whose statistics may standardise a corpus-normalised model
#: (``standardize=corpus`` with ``speaker_stats=inputs``, the ``inputset`` scoring mode):
#: 4,096 means and deviations from fewer files are mostly noise.
MIN_INPUT_SET = 20


def functionals_kind(ckpt) -> str | None:
    """``"svm"`` for the SVM baseline's ``svm.pt`` (an ``"svm"`` entry), ``"mlp"`` for the
    Lightning-trained head of ``model=mlp`` (a ``state_dict`` and ``features.level ==
    "functionals"`` in its hyper-parameters), ``None`` for anything else (a loaded checkpoint dict)."""
    if not isinstance(ckpt, dict):
        return None
    if isinstance(ckpt.get("svm"), dict):
        return "svm"
    hp = ckpt.get("hyper_parameters")
    features = hp.get("features") if isinstance(hp, dict) else None
    if isinstance(features, dict) and features.get("level") == "functionals" and isinstance(ckpt.get("state_dict"), dict):
        return "mlp"
    return None


def is_functionals_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a functionals model (``svm.pt``, or the ``best.ckpt`` of
    ``model=mlp``); ``False`` for anything else, including unreadable files (the CNN
    loader reports those)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any unreadable file is "not ours": the regular loader gives the precise error
        return False
    return functionals_kind(ckpt) is not None


def checkpoint_hyper_parameters(path: str | Path) -> dict:
    """The settings of a functionals model (classes, features, data settings, split fingerprint).

    Raises:
        CheckpointError: not a functionals model.
    """
    if not is_functionals_checkpoint(path):
        raise CheckpointError(f"{path} is not a model on openSMILE functionals (SVM or MLP)")
    return dict(torch.load(path, map_location="cpu", weights_only=True)["hyper_parameters"])


def _stats(x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, std)`` over rows of ``[n, n_features]``, a zero std replaced by 1 (as in training)."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    return torch.from_numpy(mean.astype(np.float32)), torch.from_numpy(np.where(std > 1e-8, std, 1.0).astype(np.float32))


def _mlp_head(ckpt: dict, path) -> tuple[MLPHead, tuple[torch.Tensor, torch.Tensor]]:
    """The :class:`~ser_lightning.models.mlp.MLPHead` of a ``model=mlp`` checkpoint with its
    weights, and the training part's ``(mean, std)`` stored beside them.

    Raises:
        CheckpointError: settings or weights that do not describe an MLP head of this version.
    """
    hp, state = ckpt["hyper_parameters"], ckpt["state_dict"]
    try:
        head = MLPHead(int(hp["n_features"]), len(hp["class_names"]), list(hp.get("hidden") or []), float(hp.get("dropout", 0.0)),
                       float(hp.get("input_dropout", 0.0)), hp.get("layer_blocks"))
        head.load_state_dict({k[len("net."):]: v for k, v in state.items() if k.startswith("net.")})
        return head, (state["training_mean"], state["training_std"])
    except (ConfigError, RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: its settings or weights do not describe an MLP head of this version ({exc})") from exc


class BoundedMemo(OrderedDict):
    """A dict of at most ``size`` entries, the least recently used dropped first: the memo of
    a long-lived predictor (``serve.py``, ``eval.py``) stays bounded (an encoder embedding is
    16 kB; 4,096 entries are 64 MB) while a file scored under several statistics modes is
    still extracted once."""

    def __init__(self, size: int = 4096):
        super().__init__()
        self.size = int(size)

    def __getitem__(self, key):
        value = super().__getitem__(key)
        self.move_to_end(key)
        return value

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


def input_set_message(n: int) -> str:
    """Why ``n`` recordings are too few for input-set statistics, and what to do instead."""
    return (f"input-set statistics (speaker_stats=inputs for a corpus-normalised model) need at least {MIN_INPUT_SET} "
            f"recordings of your setting; got {n}. Give a folder with more recordings (unlabelled), or use "
            f"speaker_stats=training (nothing of your recordings)")


class FunctionalsPredictor:
    """Classify whole files from their openSMILE functionals with a fitted SVM or MLP head.

    Args:
        head: the classifier (``[batch, n_features]`` standardised -> ``[batch, n_classes]``):
            :class:`~ser_lightning.models.svm.SVMHead` or :class:`~ser_lightning.models.mlp.MLPHead`.
        feature_set: ``egemaps`` or ``compare``.
        class_names: class names in index order.
        sample_rate: Hz the functionals were computed at (the audio is resampled to it).
        standardize: ``training`` (the training part's statistics, fixed), ``speaker``
            (a speaker's statistics: ``stats`` of :meth:`predict`, :meth:`enrol`, else the
            training statistics) or ``corpus`` (the same, from a set of recordings of one
            setting: ``speaker_stats=inputs`` takes all inputs of a call, at least
            :data:`MIN_INPUT_SET`).
        training_stats: ``(mean, std)``, each ``[n_features]``.
        temperature: calibration temperature ``T`` (logits / T before the softmax).
        classes: the class names that may be predicted (``None``: all).
        speaker_stats: ``training``, ``enrol`` (after :meth:`enrol`) or ``inputs`` (all
            inputs of one call are one speaker).
        silence_dbfs: a file whose mean energy is below this is labelled silence.
        memo: ``sha1 of the wave's bytes -> functionals``, filled as files are processed
            (a file scored under several statistics modes is extracted once); default a
            :class:`BoundedMemo` of 4,096 entries.
        extractor: the utterance feature extractor (default: openSMILE's ``feature_set``;
            :func:`~ser_lightning.data.utterance_features.utterance_features`).
        window_seconds, hop_seconds: the windows of a live stream (``stream.py``, ``serve.py``'s
            ``/stream``: :meth:`probabilities` classifies each window as a recording of its
            own); ``predict.py`` and evaluation classify each whole file. Default 3 s every
            half window.

    Raises:
        ConfigError: an unknown ``standardize`` or ``speaker_stats``, bad ``classes`` or temperature.
    """

    scoring = SCORING

    def __init__(self, head: SVMHead | MLPHead, feature_set: str, class_names: list[str], sample_rate: int, standardize: str,
                 training_stats: tuple[torch.Tensor, torch.Tensor], temperature: float = 1.0, classes: list[str] | None = None,
                 speaker_stats: str = "training", silence_dbfs: float | None = SILENCE_DBFS, memo: dict | None = None,
                 extractor=None, window_seconds: float | None = None, hop_seconds: float | None = None):
        if standardize not in ("training", "speaker", "corpus"):
            raise ConfigError(f"standardize='{standardize}' is unknown; allowed: training, speaker, corpus")
        if speaker_stats not in ("training", "enrol", "inputs"):
            raise ConfigError(f"speaker_stats='{speaker_stats}' is not available for a model on functionals; allowed: training, enrol, inputs")
        if not (math.isfinite(temperature) and temperature > 0):
            raise ConfigError(f"temperature must be a finite number > 0, got {temperature}")
        if standardize == "training" and speaker_stats == "inputs":  # would be ignored: a silent wrong answer
            raise ConfigError("speaker_stats=inputs: this model standardises with its training statistics and takes no "
                              "statistics of your recordings; use a model trained with model.standardize=corpus or speaker, "
                              "or leave speaker_stats out")
        self.head = head.eval()
        self.feature_set, self.class_names, self.sample_rate = feature_set, list(class_names), int(sample_rate)
        self.standardize = standardize
        self.speaker_normalized = standardize != "training"
        self.training_stats = tuple(t.float() for t in training_stats)
        self.temperature = float(temperature)
        self.allowed = allowed_classes(self.class_names, classes)
        self.speaker_stats, self.silence_dbfs = speaker_stats, silence_dbfs
        self.enrolment_stats: tuple[torch.Tensor, torch.Tensor] | None = None
        self.adaptation = None
        self.memo = BoundedMemo() if memo is None else memo  # a caller's own dict (a run's files) is theirs to size
        self.extractor = extractor if extractor is not None else utterance_features({"kind": feature_set})
        self.window_seconds = float(window_seconds or 3.0)
        self.hop_seconds = float(hop_seconds or self.window_seconds / 2)
        if self.window_seconds <= 0 or self.hop_seconds <= 0:
            raise ConfigError(f"window_seconds and hop_seconds must be positive, got {self.window_seconds} and {self.hop_seconds}")
        self.clip_samples = int(round(self.window_seconds * self.sample_rate))
        self.hop_samples = int(round(self.hop_seconds * self.sample_rate))
        self.min_samples = int(math.ceil(0.025 * self.sample_rate))  # 25 ms: an encoder's receptive field
        self.lld = False

    @classmethod
    def from_checkpoint(cls, path: str | Path, device=None, calibration: str = "checkpoint", temperature: float | None = None,
                        **kwargs) -> "FunctionalsPredictor":
        """Rebuild the predictor from ``svm.pt`` or a ``model=mlp`` checkpoint (``torch.load(weights_only=True)``).

        Args:
            calibration: ``checkpoint`` (the temperature stored after training) or ``none`` (T = 1).
            temperature: overrides ``calibration``.
            **kwargs: ``classes``, ``speaker_stats``, ``silence_dbfs``, ``memo``, ``extractor``
                (one already built for the checkpoint's features), ``device``,
                ``window_seconds`` and ``hop_seconds`` (a live stream's windows); the other
                settings of the CNN predictor (``scoring``, ``min_seconds``) do not apply to
                whole-file functionals and are ignored.

        Raises:
            CheckpointError: not a functionals model, or tensors that do not fit together.
        """
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise CheckpointError(f"{path}: cannot be read as a checkpoint ({type(exc).__name__}: {exc})") from exc
        kind = functionals_kind(ckpt)
        if kind is None or not isinstance(ckpt.get("hyper_parameters"), dict):
            raise CheckpointError(f"{path} is not a model on openSMILE functionals (python train.py model=svm writes "
                                  f"checkpoints/svm.pt, model=mlp checkpoints/best.ckpt)")
        if calibration not in ("checkpoint", "none"):
            raise ConfigError(f"calibration='{calibration}' is unknown; allowed: checkpoint, none")
        hp = ckpt["hyper_parameters"]
        try:
            if kind == "svm":
                sv = ckpt["svm"]
                head = SVMHead(sv["support_vectors"], sv["dual_coef"], sv["intercept"], sv["n_support"], hp["kernel"], hp["gamma"])
                training_stats = (sv["training_mean"], sv["training_std"])
            else:
                head, training_stats = _mlp_head(ckpt, path)
            stored = float((hp.get("calibration") or {}).get("temperature", 1.0))
            temp = temperature if temperature is not None else (1.0 if calibration == "none" else stored)
            keep = {k: v for k, v in kwargs.items() if k in ("classes", "speaker_stats", "silence_dbfs", "memo", "window_seconds",
                                                               "hop_seconds")}
            extractor = kwargs.get("extractor") or utterance_features(hp["features"], device=kwargs.get("device") or "cpu")
            return cls(head, hp["features"]["kind"], hp["class_names"], hp["sample_rate"], hp["standardize"],
                       training_stats, temp, extractor=extractor, **keep)
        except KeyError as exc:
            raise CheckpointError(f"{path}: {kind.upper()} checkpoint lacks {exc}") from exc

    # --- features -------------------------------------------------------------------------

    def _wave(self, item, sample_rate: int | None, source: str) -> np.ndarray:
        if isinstance(item, np.ndarray):
            if sample_rate is None:
                raise AudioDecodeError(f"{source}: sample_rate is required for arrays")
            return to_mono_resampled(item, sample_rate, self.sample_rate, source)
        if isinstance(item, (str, Path)):
            return load_audio(item, self.sample_rate)
        raise AudioDecodeError(f"{source}: unsupported input type {type(item).__name__} (use a path, a NumPy array or an (array, sample_rate) pair)")

    def functionals(self, wave: np.ndarray) -> np.ndarray:
        """``[time]`` float32 at :attr:`sample_rate` -> ``[n_features]`` functionals or
        encoder embedding (memoised).

        Raises:
            AudioDecodeError: see :func:`~ser_lightning.transforms.opensmile_features.extract`
                and :class:`~ser_lightning.encoders.embedding.EncoderEmbedding`.
        """
        wave = np.ascontiguousarray(wave, dtype=np.float32)
        key = hashlib.sha1(wave.tobytes()).hexdigest()
        if key not in self.memo:
            self.memo[key] = self.extractor(wave, self.sample_rate)
        return self.memo[key]

    def statistics(self, waves) -> tuple[torch.Tensor, torch.Tensor]:
        """A speaker's ``(mean, std)`` of the functionals, each ``[n_features]``, over
        the files ``waves`` (``[time]`` arrays at :attr:`sample_rate`).

        Raises:
            ValueError: no usable file.
        """
        rows = []
        for w in waves:
            try:
                rows.append(self.functionals(w))
            except AudioDecodeError:
                continue
        if not rows:
            raise ConfigError("no recording to take the speaker's statistics from")
        return _stats(np.stack(rows))

    def enrol(self, inputs, sample_rate: int | None = None) -> list[str]:
        """The speaker's statistics from enrolment recordings (``speaker_stats="enrol"``);
        returns the inputs that could not be read.

        Raises:
            ConfigError: none could be read.
        """
        inputs = [inputs] if isinstance(inputs, (str, Path, np.ndarray)) else list(inputs)
        rows, problems = [], []
        for i, item in enumerate(inputs):
            source = f"array[{i}]" if isinstance(item, np.ndarray) else str(item)
            try:
                rows.append(self.functionals(self._wave(item, sample_rate, source)))
            except AudioDecodeError as exc:
                problems.append(f"{source}: {exc}")
        if not rows:
            raise ConfigError(f"no enrolment recording could be read ({'; '.join(problems)})")
        self.enrolment_stats = _stats(np.stack(rows))
        return problems

    def adapted(self, *args, **kwargs):
        """Raises :class:`ConfigError`: an SVM or MLP on functionals has no BatchNorm statistics to adapt (``adapt=bn``)."""
        raise ConfigError("adapt=bn re-estimates BatchNorm statistics; a model on functionals (SVM, MLP) has none (use adapt=none)")

    # --- prediction -------------------------------------------------------------------------

    def calibrated(self, logits: np.ndarray) -> np.ndarray:
        """``[n, n_classes]`` decision values -> probabilities ``softmax(logits / T)``."""
        return calibrated_probabilities(logits, self.temperature, self.allowed)

    @torch.inference_mode()
    def logits(self, feats: np.ndarray, stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> np.ndarray:
        """``[n, n_features]`` raw functionals -> ``[n, n_classes]`` decision values.

        Args:
            stats: ``(mean, std)`` of the speaker (``standardize=speaker``); ``None``: the
                training statistics. Ignored for ``standardize=training``.
        """
        mean, std = stats if (stats is not None and self.speaker_normalized) else self.training_stats
        x = (torch.from_numpy(np.array(feats, dtype=np.float32)) - mean) / std
        return self.head(x).numpy()

    def probabilities(self, windows: np.ndarray, stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> np.ndarray:
        """``[n, clip_samples]`` windows of a stream -> ``[n, n_classes]`` calibrated
        probabilities, each window classified as a recording of its own (the zeros a
        stream shorter than one window is padded with are left out first).

        Args:
            stats: a speaker's ``(mean, std)`` (speaker- or corpus-normalised model); ``None``:
                the training statistics.
        """
        rows = []
        for w in np.asarray(windows, dtype=np.float32):
            voiced = np.flatnonzero(w)
            w = w[voiced[0]:voiced[-1] + 1] if voiced.size else w
            w = w if len(w) >= self.min_samples else np.pad(w, (0, self.min_samples - len(w)))
            rows.append(self.extractor(np.ascontiguousarray(w), self.sample_rate))  # not memoised: a stream's memory stays bounded
        return self.calibrated(self.logits(np.stack(rows), stats))

    def predict(self, inputs, sample_rate: int | None = None, batch_size: int = 32, progress: bool = False,
                stats: list | None = None) -> list[Prediction]:
        """One :class:`~ser_lightning.inference.outputs.Prediction` per input (paths,
        arrays or ``(array, rate)`` pairs), from its whole-file functionals.

        Args:
            stats: ``standardize=speaker``: ``(mean, std)`` per input, overriding
                ``speaker_stats`` (the scorer passes each test speaker's); a ``None``
                entry fails its input.

        Returns:
            Predictions in input order; an input that cannot be used carries an ``error``,
            a silent one the label :data:`~ser_lightning.inference.outputs.SILENCE`.
        """
        if isinstance(inputs, (str, Path, np.ndarray)) or (isinstance(inputs, tuple) and len(inputs) == 2 and isinstance(inputs[0], np.ndarray)):
            inputs = [inputs]
        pairs = [(item[0], int(item[1])) if isinstance(item, tuple) and len(item) == 2 else (item, sample_rate) for item in inputs]
        waves, out = {}, [None] * len(pairs)
        for i, (item, rate) in enumerate(pairs):
            source = f"array[{i}]" if isinstance(item, np.ndarray) else str(item)
            try:
                waves[i] = (source, self._wave(item, rate, source))
            except AudioDecodeError as exc:
                out[i] = Prediction(source, error=str(exc))
        group_stats = None
        if self.speaker_normalized and stats is None:
            if self.speaker_stats == "enrol":
                if self.enrolment_stats is None:
                    raise ConfigError("speaker_stats=enrol needs enrol=<recordings of the speaker> first")
                group_stats = self.enrolment_stats
            elif self.speaker_stats == "inputs":
                if self.standardize == "corpus" and len(waves) < MIN_INPUT_SET:
                    raise ConfigError(input_set_message(len(waves)))
                group_stats = self.statistics(w for _, w in waves.values())
        for i, (source, wave) in waves.items():
            duration = len(wave) / self.sample_rate
            level = energy_dbfs(wave)
            window = WindowPrediction(0.0, duration, level)
            if self.silence_dbfs is not None and level < self.silence_dbfs:
                out[i] = Prediction(source, SILENCE, duration=duration, windows=[window],
                                    note=f"silence: the file is below {self.silence_dbfs:g} dBFS; no emotion predicted")
                continue
            st = stats[i] if stats is not None else group_stats
            if self.speaker_normalized and stats is not None and st is None:
                out[i] = Prediction(source, error=f"{source}: no speaker statistics could be computed for this input's group")
                continue
            try:
                logits = self.logits(self.functionals(wave)[None], st)
            except AudioDecodeError as exc:
                out[i] = Prediction(source, error=f"{source}: {exc}")
                continue
            pr = self.calibrated(logits)[0]
            k = int(np.argmax(pr))
            probs = {c: float(v) for c, v in zip(self.class_names, pr, strict=True)}
            window.label, window.confidence, window.probabilities = self.class_names[k], float(pr[k]), probs
            out[i] = Prediction(source, self.class_names[k], float(pr[k]), probs, duration=duration, windows=[window], logits=logits)
        return out


class FileAverage:
    """Late fusion: the mean of several predictors' calibrated class probabilities, file by file.

    Each member scores a file its own way (a CNN: the mean over its windows; an SVM: its
    whole-file functionals) with its own calibration temperature; the fused logits are
    ``log`` of the mean probabilities (so ``softmax`` at ``T = 1`` gives the mean), and
    :attr:`temperature` (fitted on the fused validation output by the ensemble code) is
    applied on top. Speaker statistics are per member: :meth:`statistics` returns one
    entry per member (``None`` for a member without speaker normalisation).

    Args:
        members: predictors with the same ``class_names`` and sample rate.
        temperature: the fused output's temperature.

    Raises:
        CheckpointError: members with different classes or sample rates.
    """

    scoring = "file-average"

    def __init__(self, members: list, temperature: float = 1.0):
        if len(members) < 2:
            raise CheckpointError("late fusion needs at least two models")
        first = members[0]
        for m in members[1:]:
            if m.class_names != first.class_names or m.sample_rate != first.sample_rate:
                raise CheckpointError(f"fused models must share classes and sample rate: {first.class_names} at {first.sample_rate} Hz "
                                      f"vs {m.class_names} at {m.sample_rate} Hz")
        self.members, self.class_names, self.sample_rate = list(members), list(first.class_names), first.sample_rate
        self.temperature = float(temperature)
        self.allowed = first.allowed
        self.speaker_normalized = any(m.speaker_normalized for m in members)
        self.training_stats = tuple(m.training_stats if m.speaker_normalized else None for m in members)
        self.adaptation = None

    def statistics(self, waves) -> tuple:
        """One ``(mean, std)`` per speaker-normalised member (``None`` for the others)."""
        waves = list(waves)
        return tuple(m.statistics(waves) if m.speaker_normalized else None for m in self.members)

    def adapted(self, *args, **kwargs):
        """Raises :class:`ConfigError` (AdaBN of a fused model is not supported)."""
        raise ConfigError("adapt=bn is not supported for a late fusion of different model kinds")

    def predict(self, inputs, sample_rate: int | None = None, batch_size: int = 32, progress: bool = False,
                stats: list | None = None) -> list[Prediction]:
        """Every member's predictions, their probabilities averaged per input (an input
        any member cannot score carries that member's error)."""
        per_member = []
        for k, m in enumerate(self.members):
            member_stats = None if stats is None or not m.speaker_normalized else [None if s is None else s[k] for s in stats]
            per_member.append(m.predict(inputs, sample_rate=sample_rate, batch_size=batch_size, stats=member_stats))
        out = []
        for preds in zip(*per_member, strict=True):
            bad = next((p for p in preds if p.error or not p.probabilities), None)
            if bad is not None:
                out.append(Prediction(preds[0].source, bad.label, error=bad.error, note=bad.note, duration=bad.duration))
                continue
            mean = np.mean([[p.probabilities[c] for c in self.class_names] for p in preds], axis=0)
            logits = np.log(np.clip(mean, 1e-12, None))[None]
            pr = calibrated_probabilities(logits, self.temperature, self.allowed)[0]
            k = int(np.argmax(pr))
            out.append(Prediction(preds[0].source, self.class_names[k], float(pr[k]), dict(zip(self.class_names, map(float, pr), strict=True)),
                                  duration=preds[0].duration, windows=preds[0].windows, logits=logits))
        return out
