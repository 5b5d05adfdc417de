"""Prediction from a checkpoint alone: rebuild the front-end and model, classify audio.

A checkpoint written by training holds the feature settings, class names, sample rate
and clip length in its hyper-parameters, so :meth:`Predictor.from_checkpoint` needs no
config. Checkpoints are loaded with ``torch.load(weights_only=True)``: only tensors and
plain Python containers are unpickled, no code from the file is executed.

Every input is decoded block by block and cut into overlapping windows
(:mod:`ser_lightning.data.streaming`); windows of all inputs are batched together through the
model, so memory stays bounded by the batch, however long a recording is. Each input
gets a timeline (one :class:`WindowPrediction` per window) and a summary: the mean class
probabilities over its non-silent windows.

A model trained on openSMILE descriptors (``features=egemaps|compare``) is scored the same
way, except that each input is decoded whole, its descriptors are computed once over the
whole input (as training computed them per file) and each window's descriptor frames are
cut from them (:mod:`ser_lightning.transforms.lld_windows`); its windows' timeline, silence
rule and averaging are those of every model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ser_lightning.data.audio import fit_length, to_mono_resampled
from ser_lightning.data.streaming import AudioStream, Window, WindowSlicer, audio_info, energy_dbfs
from ser_lightning.errors import AudioDecodeError, CheckpointError, ConfigError
from ser_lightning.inference.calibration import calibrated_probabilities
from ser_lightning.inference.inputs import check_speaker_folders
from ser_lightning.inference.outputs import SILENCE, Prediction, WindowPrediction
from ser_lightning.models.checkpoint import fold_batch_norm, load_backbone
from ser_lightning.transforms.features import FeatureConfig, FeatureExtractor
from ser_lightning.transforms.lld_windows import DescriptorMemo, centred_start, frame_of, lld_window
from ser_lightning.transforms.speaker_norm import FeatureStats, recording_stats

#: Where a speaker-normalised model (``features.normalize=speaker``) takes its statistics
#: from: the training speakers' pooled statistics stored in the checkpoint (needs nothing
#: of the speaker; the default), enrolment recordings of the speaker given beforehand
#: (:meth:`Predictor.enrol`), each input's own frames, all inputs of the call together
#: (one speaker), or inputs grouped by their folder (one folder per speaker).
SPEAKER_STATS = ("training", "enrol", "input", "inputs", "folder")

#: How an input becomes the model's clips: ``windows`` (windows of the clip length every
#: half clip, covering the whole input; the input's probabilities are their mean) or
#: ``center`` (the one centred clip, cropped or zero-padded, that training validates on).
SCORING = ("windows", "center")

#: Default silence threshold in dBFS (see :func:`ser_lightning.data.streaming.energy_dbfs`).
#: The quietest 3-s window of any speech file in the shared TESS, RAVDESS, SAVEE and
#: CREMA-D copies (4,092 files) is at -65.6 dBFS (a RAVDESS "calm" take), so -70 dBFS
#: marks digital silence and very quiet room tone, never speech of these corpora.
SILENCE_DBFS = -70.0


@dataclass
class _Pending:
    """Book-keeping of one input while its windows go through the model."""

    source: str
    windows: list[WindowPrediction] = field(default_factory=list)
    logits: list[np.ndarray | None] = field(default_factory=list)
    n_samples: int = 0
    error: str | None = None
    truncated: str | None = None
    lld: np.ndarray | None = None  # descriptor models: the input's [n_descriptors, frames]


class Predictor:
    """Classify emotions in audio with a trained model.

    Each input is cut into windows of ``window_seconds`` (default: the model's clip
    length) every ``hop_seconds`` (default: half a window); the last window ends at
    the input's end. An input shorter than one window is centred and zero-padded, as in
    evaluation during training. Windows whose energy is below ``silence_dbfs`` are
    labelled :data:`SILENCE` and not classified; an input's probabilities are the mean
    over its other windows.

    Args:
        model: backbone mapping ``[batch, n_features, frames]`` to logits.
        features: the training run's feature front-end.
        class_names: class names in index order.
        clip_seconds: the clip length the model was trained on, in seconds.
        device: where to run (``"cpu"``, ``"cuda"``...).
        hop_seconds: hop between window starts in seconds (``None``: half a window).
        window_seconds: window length in seconds (``None``: ``clip_seconds``).
        silence_dbfs: silence threshold in dBFS (``None``: never silence).
        min_seconds: shortest input accepted, in seconds (``None``: one STFT analysis
            window, ``features.config.win_length`` samples, 25 ms by default).
        training_stats: ``(mean [n_features], std [n_features])`` pooled over the
            training speakers; required for a speaker-normalised model
            (``features.normalize=speaker``), ignored otherwise.
        speaker_stats: one of :data:`SPEAKER_STATS`: the statistics a speaker-normalised
            model uses. ``"training"`` (default) needs nothing of the speaker;
            ``"enrol"`` needs :meth:`enrol` first; ``"input"`` reads each input twice:
            once for its statistics, once to classify it.
        scoring: one of :data:`SCORING`.
        temperature: the calibration temperature ``T`` (Guo et al., 2017): every
            window's probabilities are ``softmax(logits / T)``; 1 leaves them as trained.
        classes: the class names that may be predicted (``None``: all of the model's):
            the softmax runs over these only, the others get probability 0 (for data
            whose label set is known to be smaller, e.g. a corpus without ``calm``).

    Raises:
        ValueError: a non-positive window or hop, a window shorter than ``min_seconds``,
            an unknown ``speaker_stats`` or ``scoring``, a speaker-normalised model
            without ``training_stats``, or ``classes`` naming a class the model lacks
            or fewer than two classes.
    """

    def __init__(self, model: torch.nn.Module, features: FeatureExtractor, class_names: list[str], clip_seconds: float,
                 device: str | torch.device = "cpu", hop_seconds: float | None = None, window_seconds: float | None = None,
                 silence_dbfs: float | None = SILENCE_DBFS, min_seconds: float | None = None,
                 training_stats: tuple[torch.Tensor, torch.Tensor] | None = None, speaker_stats: str = "training",
                 scoring: str = "windows", temperature: float = 1.0, classes: list[str] | None = None):
        self.device = torch.device(device)
        #: The model with its BatchNorm layers (not folded into the convolutions, as
        #: :attr:`model` is): what :meth:`adapted` re-estimates; an adapted copy holds its
        #: adapted statistics here.
        self.unfolded_model = copy.deepcopy(model).eval()
        # Channels-last 4-D weights make the cnn2d's convolutions and max-pooling take
        # oneDNN's vectorised NHWC kernels: 2.4x faster on a CPU batch of 32 windows,
        # 1.7x on one (same outputs to 1e-7). 3-D (cnn1d) weights are left as they are.
        self.model = fold_batch_norm(model.eval()).to(self.device, memory_format=torch.channels_last)
        self.features = features.to(self.device).eval()
        self.class_names = list(class_names)
        self.sample_rate = features.config.sample_rate
        self.clip_seconds = clip_seconds
        self.window_seconds = float(window_seconds or clip_seconds)
        self.hop_seconds = float(hop_seconds or self.window_seconds / 2)
        self.clip_samples = int(round(self.window_seconds * self.sample_rate))
        self.hop_samples = int(round(self.hop_seconds * self.sample_rate))
        self.silence_dbfs = silence_dbfs
        self.min_samples = int(math.ceil(min_seconds * self.sample_rate)) if min_seconds else features.config.win_length
        if self.clip_samples <= 0 or self.hop_samples <= 0:
            raise ConfigError(f"window_seconds and hop_seconds must be positive, got {self.window_seconds} and {self.hop_seconds}")
        if self.clip_samples < self.min_samples:
            raise ConfigError(f"window_seconds={self.window_seconds} is shorter than the minimum input ({self.min_samples / self.sample_rate} s)")
        if speaker_stats not in SPEAKER_STATS:
            raise ConfigError(f"speaker_stats='{speaker_stats}' is unknown; allowed: {list(SPEAKER_STATS)}")
        self.speaker_normalized = features.config.normalize == "speaker"
        if self.speaker_normalized and training_stats is None:
            raise ValueError("a speaker-normalised model (features.normalize=speaker) needs training_stats")
        if scoring not in SCORING:
            raise ConfigError(f"scoring='{scoring}' is unknown; allowed: {list(SCORING)}")
        self.scoring = scoring
        if not (math.isfinite(temperature) and temperature > 0):
            raise ConfigError(f"temperature must be a finite number > 0, got {temperature}")
        self.temperature = float(temperature)
        self.allowed = allowed_classes(self.class_names, classes)
        self.speaker_stats = speaker_stats
        self.training_stats = None if training_stats is None else tuple(t.float().to(self.device) for t in training_stats)
        #: ``(mean, std)`` of the enrolment recordings (``speaker_stats="enrol"``), set by :meth:`enrol`.
        self.enrolment_stats: tuple[torch.Tensor, torch.Tensor] | None = None
        #: ``None``, or what :meth:`adapted` re-estimated the BatchNorm statistics on:
        #: ``{"method": "bn", "inputs": n, "windows": n, "left_out": [...]}``.
        self.adaptation: dict | None = None
        #: Descriptor models (``features=egemaps|compare``): windows are descriptor frames
        #: ``[n_features, clip_frames]`` of each whole input's openSMILE descriptors.
        self.lld = features.config.is_lld
        self.clip_frames = features.config.n_frames(self.clip_samples)
        self._descriptors = DescriptorMemo(features.config.kind, self.sample_rate) if self.lld else None

    @classmethod
    def from_checkpoint(cls, path: str | Path | list[str | Path], device: str | torch.device | None = None,
                        calibration: str = "checkpoint", temperature: float | None = None, **kwargs) -> "Predictor":
        """Rebuild the predictor from a training checkpoint, or from several (an ensemble).

        Args:
            path: a checkpoint written by ``train.py``; or a list of them, trained with
                the same features, classes and clip length (for example one recipe with
                several seeds): the predictor then outputs the mean of their class
                probabilities (:class:`~ser_lightning.models.ensemble.ProbabilityAverage`).
            device: ``None``: CUDA when available, else CPU.
            calibration: ``"checkpoint"``: the temperature stored in the checkpoint
                (``hyper_parameters["calibration"]``, fitted on validation after training;
                1 when there is none); for a list, each member's own, applied to its
                logits before averaging. ``"none"``: uncalibrated (``T = 1``).
            temperature: a temperature for the whole model's output instead (for an
                ensemble, the one fitted on the ensemble, e.g. by ``results.py ensemble``);
                overrides ``calibration``.
            **kwargs: ``hop_seconds``, ``window_seconds``, ``silence_dbfs``, ``min_seconds``,
                ``speaker_stats``, ``scoring``, ``classes``.

        Raises:
            CheckpointError: see :func:`load_checkpoint`, settings/weights that do not
                describe a model of this version, an empty list, or ensemble members that
                differ in features, classes, clip length or training statistics.
        """
        paths = list(path) if isinstance(path, (list, tuple)) else [path]
        if not paths:
            raise CheckpointError("no checkpoint given (an empty list)")
        loaded = [load_backbone(p) for p in paths]
        hp = loaded[0][1]
        for p, (_, other) in zip(paths[1:], loaded[1:], strict=True):
            for key in ("features", "class_names", "clip_seconds", "feature_stats"):
                if other.get(key) != hp.get(key):
                    raise CheckpointError(f"ensemble member {p} differs from {paths[0]} in {key}: members must share the "
                                          f"features, classes, clip length and training statistics (one recipe and split)")
        if calibration not in ("checkpoint", "none"):
            raise ConfigError(f"calibration='{calibration}' is unknown; allowed: checkpoint, none")
        from ser_lightning.inference.calibration import TemperatureScaled, checkpoint_temperature

        temps = [1.0 if calibration == "none" or temperature is not None else checkpoint_temperature(h) for _, h in loaded]
        model = loaded[0][0]
        if len(loaded) > 1:
            from ser_lightning.models.ensemble import ProbabilityAverage

            model = ProbabilityAverage([m if t == 1.0 else TemperatureScaled(m, t) for (m, _), t in zip(loaded, temps, strict=True)])
            temps = [1.0]
        feature_config = FeatureConfig.from_dict(hp["features"])
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        stats = hp.get("feature_stats")
        if feature_config.normalize == "speaker" and not (isinstance(stats, dict) and {"mean", "std"} <= set(stats)):
            raise CheckpointError(f"{paths[0]}: a speaker-normalised model whose checkpoint lacks the training statistics (feature_stats)")
        training_stats = (torch.tensor(stats["mean"]), torch.tensor(stats["std"])) if feature_config.normalize == "speaker" else None
        return cls(model, FeatureExtractor(feature_config), hp["class_names"], hp["clip_seconds"], device,
                   training_stats=training_stats, temperature=temperature if temperature is not None else temps[0], **kwargs)

    def windows(self, wave: np.ndarray) -> np.ndarray:
        """Cut ``[time]`` samples into ``[n_windows, clip_samples]`` (covering the end);
        for a descriptor model, ``[n_windows, n_features, clip_frames]`` descriptor windows
        of the whole wave's descriptors (what :meth:`logits` takes from such a model).

        Raises:
            AudioDecodeError: (descriptor models) openSMILE cannot process the wave.
        """
        if self.lld:
            p = _Pending("array", n_samples=len(wave))
            windows = list(self._descriptor_windows(np.asarray(wave, np.float32), p, self.sample_rate))
            return np.stack([self._lld_row(p, w) for w in windows])
        slicer = WindowSlicer(self.clip_samples, self.hop_samples)
        return np.stack([w.samples for w in (*slicer.push(np.asarray(wave, np.float32)), *slicer.finish())])

    @torch.inference_mode()
    def logits(self, windows: np.ndarray, stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> np.ndarray:
        """``[n, clip_samples]`` waveforms (descriptor models: ``[n, n_features,
        clip_frames]`` descriptor windows) -> ``[n, n_classes]`` raw logits (before the
        temperature).

        Args:
            stats: for a speaker-normalised model, the speaker's ``(mean, std)``, each
                ``[n_features]`` (one speaker) or ``[n, n_features]`` (one row per
                window); ``None``: the training statistics. Ignored by other models.
        """
        return self.model(self._model_input(windows, stats)).float().cpu().numpy()

    def _model_input(self, windows: np.ndarray, stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``[n, clip_samples]`` waveforms -> the model's input ``[n, n_features, frames]``
        (features, speaker-normalised with ``stats`` as in :meth:`logits`)."""
        waves = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)).to(self.device)
        feats = self.features(waves)
        if self.speaker_normalized:
            mean, std = stats if stats is not None else self.training_stats
            feats = (feats - mean.to(self.device)[..., None]) / std.to(self.device)[..., None]
        return feats

    def calibrated(self, logits: np.ndarray) -> np.ndarray:
        """``[n, n_classes]`` logits -> probabilities ``softmax(logits / temperature)``."""
        return calibrated_probabilities(logits, self.temperature, self.allowed)

    def probabilities(self, windows: np.ndarray, stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> np.ndarray:
        """``[n, clip_samples]`` waveforms -> ``[n, n_classes]`` (calibrated) class
        probabilities; ``stats`` as in :meth:`logits`."""
        return self.calibrated(self.logits(windows, stats))

    @torch.inference_mode()
    def statistics(self, waves) -> tuple[torch.Tensor, torch.Tensor]:
        """A speaker's ``(mean, std)``, each ``[n_features]``, over all frames of ``waves``
        (an iterable of ``[time]`` float32 arrays at :attr:`sample_rate`).

        Raises:
            ValueError: no audio at all.
        """
        stats = self._recording_stats(waves)
        return stats.mean.to(self.device), stats.std.to(self.device)

    def _recording_stats(self, waves) -> FeatureStats:
        """Feature statistics over all frames of ``waves`` (``[time]`` arrays): the
        front-end's frames, or each whole wave's openSMILE descriptors (descriptor models)."""
        if not self.lld:
            return recording_stats(self.features, waves, self.features.config.n_features, self.device)
        stats = FeatureStats(self.features.config.n_features)
        for wave in waves:
            stats.update(torch.tensor(self._descriptors(np.asarray(wave, np.float32))))  # a copy of the shared, read-only memo entry
        return stats

    def enrol(self, inputs, sample_rate: int | None = None) -> list[str]:
        """Take the speaker's statistics from enrolment recordings (``speaker_stats="enrol"``).

        A speaker-normalised model needs the speaker's feature mean and standard
        deviation; a few unlabelled recordings of the speaker give them (no labels are
        used). Measured on unseen speakers, 8 recordings recover the figure of
        statistics over all of a speaker's test recordings and 4 come within about 3
        UAR points (docs/RESULTS.md, "enrol k=4 / k=8"); give 8 or more where you can.

        Args:
            inputs: paths, ``[time]`` arrays or ``(array, sample_rate)`` pairs of the speaker.
            sample_rate: rate in Hz of arrays not given as pairs.

        Returns:
            The inputs that could not be read (``"source: reason"``); they are left out.

        Raises:
            ValueError: none of the inputs could be read.
        """
        if isinstance(inputs, (str, Path, np.ndarray)) or _is_array_pair(inputs):
            inputs = [inputs]
        parts = []
        problems: list[str] = []
        for i, item in enumerate(inputs):
            pair = (item[0], int(item[1])) if _is_array_pair(item) else (item, sample_rate)
            source = f"array[{i}]" if isinstance(pair[0], np.ndarray) else str(pair[0])
            st = self._file_statistics(pair[0], pair[1], source)
            if st is None:
                problems.append(f"{source}: cannot be read to the end, or holds NaN/infinite samples")
            else:
                parts.append(st)
        if not parts:
            raise ConfigError(f"no enrolment recording could be read ({'; '.join(problems)})")
        pooled = FeatureStats.pooled(parts, self.features.config.n_features)
        self.enrolment_stats = (pooled.mean.to(self.device), pooled.std.to(self.device))
        return problems

    def _input_blocks(self, item, sample_rate: int | None, source: str = "array", pending: _Pending | None = None) -> Iterator[np.ndarray]:
        """An input's samples, block by block, at :attr:`sample_rate`; notes a truncated
        file in ``pending`` when given.

        Raises:
            AudioDecodeError: the input cannot be used.
        """
        if isinstance(item, np.ndarray):
            if sample_rate is None:
                raise AudioDecodeError(f"{source}: sample_rate is required for arrays")
            yield to_mono_resampled(item, sample_rate, self.sample_rate, source)
        else:
            with AudioStream(Path(item), self.sample_rate) as stream:
                if pending is not None and stream.info.truncated:
                    pending.truncated = (f"truncated file: the header declares {stream.info.declared_frames / stream.info.sample_rate:.2f} s, "
                                         f"{stream.info.seconds:.2f} s are present and were predicted")
                yield from stream.blocks()

    def _group_statistics(self, items: list, rates: list[int | None]) -> tuple[list[int], list[tuple[torch.Tensor, torch.Tensor] | None]]:
        """Speaker statistics per group of inputs (see ``speaker_stats``).

        Returns:
            ``(group of each input, statistics of each group)``; a group whose inputs
            all fail to decode gets ``None`` (its inputs then fail with their own error).
        """
        if self.speaker_stats == "input":
            groups = list(range(len(items)))
        elif self.speaker_stats == "inputs":
            groups = [0] * len(items)
        else:  # folder
            check_speaker_folders([Path(i).parent for i in items if isinstance(i, (str, Path))])
            folders: dict[str, int] = {}
            groups = [folders.setdefault(str(Path(i).parent) if isinstance(i, (str, Path)) else "<arrays>", len(folders)) for i in items]
        stats: list[tuple[torch.Tensor, torch.Tensor] | None] = []
        for g in range(max(groups, default=-1) + 1):
            members = [k for k, gk in enumerate(groups) if gk == g]

            parts = [st for st in (self._file_statistics(items[k], rates[k]) for k in members) if st is not None]
            pooled = FeatureStats.pooled(parts, self.features.config.n_features)
            stats.append((pooled.mean.to(self.device), pooled.std.to(self.device)) if pooled.count else None)
        return groups, stats

    def _file_statistics(self, item, sample_rate: int | None, source: str = "array") -> FeatureStats | None:
        """One input's feature statistics, read block by block (bounded memory), or
        ``None`` when it cannot be decoded to the end or holds NaN/inf samples: a file
        counts whole or not at all (its error is reported when it is classified)."""
        def finite_blocks():
            for block in self._input_blocks(item, sample_rate, source):
                if not np.isfinite(block).all():
                    raise AudioDecodeError(f"{source}: contains NaN or infinite samples")
                yield block
        try:
            if self.lld:  # descriptors of the whole input, as training takes them per file
                blocks = list(finite_blocks())
                stats = self._recording_stats([np.concatenate(blocks)] if blocks else [])
            else:
                stats = recording_stats(self.features, finite_blocks(), self.features.config.n_features, self.device)
        except (AudioDecodeError, OSError, ValueError, TypeError):
            return None
        return stats if stats.count else None

    def _stream_windows(self, item, pending: _Pending, sample_rate: int | None) -> Iterator[Window]:
        """Windows of one input (file or array); records its length in ``pending``.

        Raises:
            AudioDecodeError: the input cannot be used (the message says why).
        """
        if self.lld:
            yield from self._descriptor_windows(item, pending, sample_rate)
            return
        if self.scoring == "center":
            yield from self._centre_clip(item, pending, sample_rate)
            return
        slicer = WindowSlicer(self.clip_samples, self.hop_samples)
        for block in self._input_blocks(item, sample_rate, pending.source, pending):
            yield from slicer.push(block)
        pending.n_samples = slicer.total
        self._check_length(pending)
        yield from slicer.finish()

    def _descriptor_windows(self, item, pending: _Pending, sample_rate: int | None) -> Iterator[Window]:
        """Descriptor models: decode the whole input, compute its descriptors once
        (``pending.lld``) and yield the windows :meth:`predict` scores (their samples are
        only used for the silence rule; :meth:`_lld_row` cuts their descriptor frames).

        Raises:
            AudioDecodeError: the input cannot be used, or openSMILE cannot process it.
        """
        blocks = list(self._input_blocks(item, sample_rate, pending.source, pending))
        wave = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
        pending.n_samples = len(wave)
        self._check_length(pending)
        if not np.isfinite(wave).all():
            raise AudioDecodeError(f"{pending.source}: contains NaN or infinite samples")
        try:
            pending.lld = self._descriptors(wave)
        except AudioDecodeError as exc:
            raise AudioDecodeError(f"{pending.source}: {exc}") from None
        if self.scoring == "center":
            start = max(0, (len(wave) - self.clip_samples) // 2)
            real = wave[start:start + self.clip_samples]
            yield Window(start, start + len(real), real, energy_dbfs(real))
            return
        slicer = WindowSlicer(self.clip_samples, self.hop_samples)
        yield from slicer.push(wave)
        yield from slicer.finish()

    def _lld_row(self, pending: _Pending, window: Window, out: np.ndarray | None = None) -> np.ndarray:
        """``[n_features, clip_frames]`` descriptor frames of ``window`` of an input whose
        descriptors are ``pending.lld``: from frame ``start // hop``; the centred window
        (:func:`~ser_lightning.transforms.lld_windows.centred_start`, as training's
        evaluation windows) for ``scoring="center"`` and for an input shorter than a window."""
        n = pending.lld.shape[1]
        if self.scoring == "center" or pending.n_samples < self.clip_samples:
            start = centred_start(n, self.clip_frames)
        else:
            start = frame_of(window.start, self.features.config.hop_length)
        return lld_window(pending.lld, start, self.clip_frames, out)

    def _check_length(self, pending: _Pending) -> None:
        if pending.n_samples < self.min_samples:
            raise AudioDecodeError(
                f"{pending.source}: too short ({pending.n_samples / self.sample_rate * 1000:.1f} ms); at least "
                f"{self.min_samples / self.sample_rate * 1000:.1f} ms (one analysis window) is needed")

    def _centre_clip(self, item, pending: _Pending, sample_rate: int | None) -> Iterator[Window]:
        """``scoring="center"``: the input's one centred clip (cropped or zero-padded with
        :func:`~ser_lightning.data.audio.fit_length`, exactly as training's evaluation
        clips). Holds the whole decoded input in memory."""
        blocks = list(self._input_blocks(item, sample_rate, pending.source, pending))
        wave = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
        pending.n_samples = len(wave)
        self._check_length(pending)
        clip = fit_length(wave, self.clip_samples)
        start = max(0, (len(wave) - self.clip_samples) // 2)
        real = wave[start:start + self.clip_samples]
        yield Window(start, start + len(real), np.ascontiguousarray(clip, np.float32), energy_dbfs(real))

    def _finish(self, p: _Pending) -> Prediction:
        if p.error:
            return Prediction(p.source, error=p.error)
        windows = p.windows
        voiced = [(w, lg) for w, lg in zip(windows, p.logits, strict=True) if lg is not None]
        logits = np.stack([lg for _, lg in voiced]) if voiced else None
        probs = self.calibrated(logits) if voiced else []
        voiced = [(w, pr) for (w, _), pr in zip(voiced, probs, strict=True)]
        for w, pr in voiced:
            k = int(np.argmax(pr))
            w.label, w.confidence = self.class_names[k], float(pr[k])
            w.probabilities = {c: float(v) for c, v in zip(self.class_names, pr, strict=True)}
        notes = [p.truncated] if p.truncated else []
        duration = p.n_samples / self.sample_rate
        if not voiced:
            loudest = max(w.energy_dbfs for w in windows)
            notes.insert(0, f"silence: every window is below {self.silence_dbfs:g} dBFS (loudest {loudest:.1f} dBFS); no emotion predicted")
            return Prediction(p.source, SILENCE, duration=duration, windows=windows, note="; ".join(notes))
        if len(voiced) < len(windows):
            notes.insert(0, f"{len(windows) - len(voiced)} of {len(windows)} windows silent (below {self.silence_dbfs:g} dBFS), left out of the mean")
        mean = probs.mean(axis=0)
        k = int(np.argmax(mean))
        return Prediction(p.source, self.class_names[k], float(mean[k]), {c: float(v) for c, v in zip(self.class_names, mean, strict=True)},
                          duration=duration, windows=windows, note="; ".join(notes) or None, logits=logits)

    def predict(self, inputs, sample_rate: int | None = None, batch_size: int = 32, progress: bool = False,
                stats: list[tuple[torch.Tensor, torch.Tensor] | None] | None = None) -> list[Prediction]:
        """Predict files and/or arrays; windows of all inputs share the model's batches.

        This is the one scoring path of the project: ``eval.py``, the test after
        training, ensembles, the export check and streaming all come through here (or
        through :meth:`probabilities`, which this calls), so a file and a checkpoint get
        the same answer whichever command scores them.

        Args:
            inputs: one input or a list of them: paths (``str``/``Path``) to any format
                libsndfile reads, ``[time]``/``[time, channels]`` NumPy arrays, or
                ``(array, sample_rate)`` pairs.
            sample_rate: rate in Hz of the arrays not given as pairs.
            batch_size: windows per forward pass.
            progress: show a progress bar (seconds of audio) on stderr.
            stats: speaker-normalised models only: ``(mean, std)`` (each ``[n_features]``)
                for each input, overriding ``speaker_stats`` (evaluation gives each test
                speaker's statistics this way); ``None`` entries fail their input.

        Returns:
            One :class:`Prediction` per input, in order. An input that cannot be used
            (missing, unreadable, empty, not audio, zero-length, too short, NaN or
            infinite samples) carries an ``error``; the others are still predicted.
        """
        if isinstance(inputs, (str, Path, np.ndarray)) or _is_array_pair(inputs):
            inputs = [inputs]
        pendings: list[_Pending] = []
        batch = np.empty((batch_size, self.features.config.n_features, self.clip_frames) if self.lld else
                         (batch_size, self.clip_samples), np.float32)
        batch_rows: list[tuple[_Pending, int]] = []
        batch_groups: list[int] = []
        pairs = [(item[0], int(item[1])) if _is_array_pair(item) else (item, sample_rate) for item in inputs]
        groups, group_stats = self._statistics_groups(pairs, stats)

        def flush() -> None:
            if batch_rows:
                window_stats = None
                if self.speaker_normalized:
                    rows = [group_stats[g] for g in batch_groups]
                    window_stats = (torch.stack([m for m, _ in rows]), torch.stack([s for _, s in rows]))
                logits = self.logits(batch[: len(batch_rows)], window_stats)
                for (p, row), lg in zip(batch_rows, logits, strict=True):
                    p.logits[row] = lg
                batch_rows.clear()
                batch_groups.clear()

        bar = self._progress_bar(inputs, sample_rate) if progress else None
        for i, (item, rate) in enumerate(pairs):
            source = f"array[{i}]" if isinstance(item, np.ndarray) else str(item)
            p = _Pending(source)
            pendings.append(p)
            seen = 0
            missing_stats = self.speaker_normalized and group_stats[groups[i]] is None
            try:
                if not isinstance(item, (str, Path, np.ndarray)):
                    raise AudioDecodeError(f"{source}: unsupported input type {type(item).__name__} (use a path, a NumPy array "
                                           f"or an (array, sample_rate) pair)")
                for w in self._stream_windows(item if isinstance(item, np.ndarray) else Path(item), p, rate):
                    p.windows.append(WindowPrediction(w.start / self.sample_rate, w.end / self.sample_rate, w.energy_dbfs))
                    p.logits.append(None)
                    if (self.silence_dbfs is None or w.energy_dbfs >= self.silence_dbfs) and not missing_stats:
                        if self.lld:
                            self._lld_row(p, w, batch[len(batch_rows)])
                        else:
                            batch[len(batch_rows)] = w.samples
                        batch_rows.append((p, len(p.logits) - 1))
                        batch_groups.append(groups[i])
                        if len(batch_rows) == batch_size:
                            flush()
                    if bar is not None and w.end > seen:
                        bar.update((w.end - seen) / self.sample_rate)
                        seen = w.end
                if missing_stats:  # decodable now, but not when its statistics were taken
                    raise AudioDecodeError(f"{source}: no speaker statistics could be computed for this input's group")
            except AudioDecodeError as exc:
                p.error = str(exc)
            if bar is not None:
                bar.set_postfix_str(Path(source).name, refresh=False)
        flush()
        if bar is not None:
            bar.update(max(0.0, bar.total - bar.n))
            bar.close()
        return [self._finish(p) for p in pendings]

    def _statistics_groups(self, pairs: list[tuple], stats: list | None) -> tuple[list[int], list]:
        """The statistics group of each ``(input, rate)`` pair and each group's ``(mean,
        std)`` (see :meth:`predict`'s ``stats`` and ``speaker_stats``); one group holding
        the training statistics for a model without speaker normalisation (never used).

        Raises:
            ValueError: ``stats`` of another length than ``pairs``; ``speaker_stats="enrol"``
                before :meth:`enrol`.
        """
        groups, group_stats = [0] * len(pairs), [self.training_stats]
        if stats is not None:
            if len(stats) != len(pairs):
                raise ValueError(f"stats: {len(stats)} entries for {len(pairs)} inputs")
            groups, group_stats = list(range(len(pairs))), [None if st is None else tuple(t.to(self.device) for t in st) for st in stats]
        elif self.speaker_normalized and self.speaker_stats == "enrol":
            if self.enrolment_stats is None:
                raise ConfigError("speaker_stats='enrol' needs enrolment recordings first (Predictor.enrol / predict.py enrol=...)")
            group_stats = [self.enrolment_stats]
        elif self.speaker_normalized and self.speaker_stats != "training":
            groups, group_stats = self._group_statistics([it for it, _ in pairs], [r for _, r in pairs])
        return groups, group_stats

    def adapted(self, inputs, sample_rate: int | None = None, batch_size: int = 32,
                stats: list[tuple[torch.Tensor, torch.Tensor] | None] | None = None) -> "Predictor":
        """A copy of this predictor whose model's BatchNorm statistics are re-estimated on
        ``inputs`` (AdaBN, Li et al., 2018; :func:`ser_lightning.inference.adaptation.reestimate_batchnorm`):
        unsupervised test-time adaptation to a speaker or a corpus from a few unlabelled
        recordings (enrolment recordings, never the ones to be scored).

        The statistics are taken over exactly what the model sees when scoring: the
        windows :meth:`predict` cuts from each input (``scoring``, ``window_seconds``,
        ``hop_seconds``; silent windows left out), turned into features
        ``[n_windows, n_features, frames]`` and, for a speaker-normalised model,
        normalised with the speaker statistics :meth:`predict` would use for these
        inputs (``stats`` or ``speaker_stats``, e.g. those of :meth:`enrol`). Every BatchNorm
        layer of the model (of each member of an ensemble) gets the per-channel mean and
        population variance of its inputs over those windows; weights, dropout and every
        other setting are unchanged. This predictor is left as it was (the model is copied
        from :attr:`unfolded_model` each time), so other modes are unaffected.

        Args:
            inputs: paths, ``[time]`` arrays or ``(array, sample_rate)`` pairs, as in :meth:`predict`.
            sample_rate: rate in Hz of arrays not given as pairs.
            batch_size: windows per forward pass (the result does not depend on it).
            stats: per input, the ``(mean, std)`` (each ``[n_features]``) normalising it
                (speaker-normalised models; as in :meth:`predict`).

        Returns:
            The adapted predictor; its :attr:`adaptation` says how many inputs and windows
            were used and which inputs were left out (unreadable, NaN/infinite samples,
            too short, or silent throughout).

        Raises:
            ConfigError: not one window to adapt on (no input, or none usable), or a
                model without BatchNorm layers.
        """
        from ser_lightning.inference.adaptation import reestimate_batchnorm

        if isinstance(inputs, (str, Path, np.ndarray)) or _is_array_pair(inputs):
            inputs = [inputs]
        pairs = [(item[0], int(item[1])) if _is_array_pair(item) else (item, sample_rate) for item in inputs]
        groups, group_stats = self._statistics_groups(pairs, stats)
        left_out: dict[str, str] = {}
        used: set[int] = set()

        def input_windows(i: int, item, rate) -> list[np.ndarray]:
            """One input's non-silent windows (a file counts whole or not at all)."""
            source = f"array[{i}]" if isinstance(item, np.ndarray) else str(item)
            if self.speaker_normalized and group_stats[groups[i]] is None:
                left_out[source] = "no speaker statistics could be computed for it"
                return []
            pending = _Pending(source)
            try:
                if not isinstance(item, (str, Path, np.ndarray)):
                    raise AudioDecodeError(f"unsupported input type {type(item).__name__}")
                windows = list(self._stream_windows(item if isinstance(item, np.ndarray) else Path(item), pending, rate))
            except AudioDecodeError as exc:
                left_out[source] = str(exc)
                return []
            kept = [self._lld_row(pending, w) if self.lld else w.samples
                    for w in windows if self.silence_dbfs is None or w.energy_dbfs >= self.silence_dbfs]
            if not kept:
                left_out[source] = "silent throughout"
            return kept

        def batches():
            rows: list[np.ndarray] = []
            rows_group: list[int] = []

            def model_input() -> torch.Tensor:
                window_stats = None
                if self.speaker_normalized:
                    chosen = [group_stats[g] for g in rows_group]
                    window_stats = (torch.stack([m for m, _ in chosen]), torch.stack([s for _, s in chosen]))
                return self._model_input(np.stack(rows), window_stats)

            for i, (item, rate) in enumerate(pairs):
                for samples in input_windows(i, item, rate):
                    used.add(i)
                    rows.append(samples)
                    rows_group.append(groups[i])
                    if len(rows) == batch_size:
                        yield model_input()
                        rows.clear()
                        rows_group.clear()
            if rows:
                yield model_input()

        model = copy.deepcopy(self.unfolded_model).to(self.device)
        try:
            n_windows = reestimate_batchnorm(model, batches)
        except ConfigError:  # a model without BatchNorm: its own message
            raise
        except ValueError:
            reasons = "; ".join(f"{s}: {r}" for s, r in left_out.items()) or "no input given"
            raise ConfigError(f"adapt=bn: no window to re-estimate the BatchNorm statistics on ({reasons})") from None
        new = copy.copy(self)
        new.unfolded_model = model
        new.model = fold_batch_norm(copy.deepcopy(model).eval()).to(self.device, memory_format=torch.channels_last)
        new.adaptation = {"method": "bn", "inputs": len(used), "windows": n_windows,
                          "left_out": [f"{s}: {r}" for s, r in left_out.items()]}
        return new

    def _progress_bar(self, inputs, sample_rate: int | None):
        from tqdm.auto import tqdm

        total = 0.0
        for item in inputs:
            if _is_array_pair(item):
                total += len(item[0]) / int(item[1])
            elif isinstance(item, np.ndarray):
                total += len(item) / sample_rate if sample_rate else 0.0
            else:
                try:
                    total += audio_info(item).seconds
                except AudioDecodeError:
                    pass
        return tqdm(total=round(total, 2), unit="s", desc="audio", dynamic_ncols=True,
                    bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}] {postfix}")


def allowed_classes(class_names: list[str], classes: list[str] | None) -> np.ndarray | None:
    """``[n_classes]`` bool mask of ``classes`` among the model's ``class_names``
    (``None`` when ``classes`` is ``None``: every class may be predicted).

    Raises:
        ConfigError: a name the model has no class for (the model's classes are listed),
            or fewer than two classes left (nothing to choose between).
    """
    if classes is None:
        return None
    unknown = [c for c in classes if c not in class_names]
    if unknown:
        raise ConfigError(f"classes={list(classes)}: the model has no class {unknown}; its classes are {class_names}")
    mask = np.array([c in set(classes) for c in class_names])
    if mask.sum() < 2:
        raise ConfigError(f"classes={list(classes)}: at least two of the model's classes are needed to choose between")
    return mask


def _is_array_pair(item) -> bool:
    return isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], np.ndarray) and isinstance(item[1], (int, np.integer))


