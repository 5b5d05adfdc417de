"""Emotion of a live stream: chunks in, events out, in bounded memory.

:class:`StreamingPredictor` is a caller of :class:`~ser_lightning.inference.predictor.Predictor`:
every window goes through :meth:`Predictor.probabilities`, windows are cut by the same
:class:`~ser_lightning.data.streaming.WindowSlicer` and resampled by the same streaming soxr
resampler ("HQ") as ``predict.py``'s, and silent windows follow the predictor's
``silence_dbfs``. So without a VAD its windows and probabilities are ``predict.py``'s for
the same audio (tests/test_live.py). With a VAD (:mod:`ser_lightning.data.vad`) only speech is
classified: each speech segment is cut into windows as if it were a file of its own, and
the segment's label is the mean of its windows' probabilities.

Memory is bounded for an endless stream: a few seconds of history (for the VAD's
look-back), one window plus one chunk in the slicer, and a running sum per segment.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from ser_lightning.data.streaming import DBFS_FLOOR, AudioStream, Window, WindowSlicer
from ser_lightning.data.vad import SegmentEnded, SegmentStarted, VoiceActivityDetector
from ser_lightning.errors import ConfigError
from ser_lightning.inference.outputs import SILENCE, Prediction, WindowPrediction
from ser_lightning.inference.predictor import Predictor

#: Model-rate audio kept before the current position while no segment is open, in
#: seconds, beyond the VAD's look-back (a segment's start is announced once it lasted
#: min_speech_seconds, and reaches pad_seconds further back).
HISTORY_SECONDS = 2.0


@dataclass
class SegmentStart:
    """Speech began (VAD only). ``start``: seconds from the beginning of the stream."""

    index: int
    start: float


@dataclass
class WindowResult(WindowPrediction):
    """One classified (or silent) analysis window: a :class:`WindowPrediction` (the row of
    predict.py's timeline) with the VAD segment it belongs to.

    Attributes:
        start, end: seconds from the beginning of the stream (``end`` is the segment's
            or stream's end for a padded window shorter than the model's clip).
        energy_dbfs: mean energy of the window's real samples in dBFS.
        label: a class name, or ``"silence"`` below the predictor's ``silence_dbfs``.
        confidence: probability of ``label`` (``None`` for silence).
        probabilities: class name -> probability (empty for silence).
        segment: index of the VAD speech segment holding it (``None`` without VAD).
    """

    segment: int | None = None

    def as_window_prediction(self) -> WindowPrediction:
        """The same row as ``predict.py``'s timeline uses."""
        return WindowPrediction(self.start, self.end, self.energy_dbfs, self.label, self.confidence, dict(self.probabilities))


@dataclass
class SegmentEnd:
    """A speech segment is over (VAD only), with its label.

    Attributes:
        index, start, end: the segment (seconds from the beginning of the stream).
        label: class with the highest mean probability over its non-silent windows
            (``"silence"`` when every window was below ``silence_dbfs``).
        confidence: that mean probability (``None`` for silence).
        probabilities: class name -> mean probability (empty for silence).
        windows: number of windows the segment was cut into.
        energy_dbfs: mean energy of the segment in dBFS.
    """

    index: int
    start: float
    end: float
    label: str
    confidence: float | None
    probabilities: dict[str, float]
    windows: int
    energy_dbfs: float

    def as_window_prediction(self) -> WindowPrediction:
        """One timeline row for the whole segment (``predict.py segmenter=vad``)."""
        return WindowPrediction(self.start, self.end, self.energy_dbfs, self.label, self.confidence, dict(self.probabilities))


@dataclass
class StreamIssue:
    """Something wrong with the input, marked in the stream instead of stopping it.

    Attributes:
        kind: ``"nan"`` (NaN/infinite samples, replaced by zeros), ``"overflow"``
            (the audio device dropped input frames), ``"too_short"`` (the whole stream
            was shorter than one STFT analysis window; nothing classified).
        time: seconds from the beginning of the stream.
        message: what happened, for the user.
    """

    kind: str
    time: float
    message: str


Event = SegmentStart | WindowResult | SegmentEnd | StreamIssue


class _Segment:
    """An open speech segment: its own window slicer and running sums."""

    def __init__(self, index: int, start: int, predictor: Predictor):
        self.index, self.start = index, start  # start in model-rate samples
        self.slicer = WindowSlicer(predictor.clip_samples, predictor.hop_samples)
        self.fed = start  # stream sample up to which audio went into the slicer
        self.prob_sum = np.zeros(len(predictor.class_names), np.float64)
        self.voiced = self.windows = 0
        self.square_sum = 0.0


class StreamingPredictor:
    """Classify an endless audio stream, chunk by chunk.

    Example::

        live = StreamingPredictor(Predictor.from_checkpoint("best.ckpt"), input_rate=48000,
                                  vad=VoiceActivityDetector("silero"))
        for chunk in microphone_chunks():          # [time] or [time, channels] float32
            for event in live.push(chunk):
                print(event)
        for event in live.finish():
            print(event)

    Args:
        predictor: the scorer (its windows, hop, silence threshold and classes are used).
        input_rate: sample rate of the pushed chunks in Hz (resampled to the model's).
        vad: a detector; ``None``: no VAD, every window is classified (``predict.py``'s
            windows for the same audio).
        stats: for a speaker-normalised model, the speaker's ``(mean, std)``
            (:meth:`Predictor.statistics` of enrolment recordings); ``None``: the
            training statistics stored in the checkpoint. A stream has no "whole
            input" to take statistics from.
        batch_size: windows per forward pass when a chunk completes several.

    Raises:
        ValueError: a non-positive ``input_rate``.
        ConfigError: a model on openSMILE descriptors (``features=egemaps|compare``).
    """

    def __init__(self, predictor: Predictor, input_rate: int, vad: VoiceActivityDetector | None = None,
                 stats=None, batch_size: int = 16):
        if int(input_rate) <= 0:
            raise ConfigError(f"input_rate must be a positive number of Hz, got {input_rate}")
        if not hasattr(predictor, "probabilities"):
            raise ConfigError("a late fusion of different model kinds scores whole files and cannot follow a live stream: "
                              "use predict.py on recordings, or stream one model")
        if getattr(predictor, "lld", False):
            raise ConfigError(f"a model on openSMILE descriptors (features={predictor.features.config.kind}) computes them over "
                              f"each whole input, which a live stream does not have: use predict.py (or serve.py "
                              f"segmenter=windows) on recordings")
        if stats is None and predictor.speaker_normalized and predictor.speaker_stats == "enrol":
            stats = predictor.enrolment_stats  # set by Predictor.enrol (stream.py / predict.py enrol=)
        self.predictor, self.input_rate, self.vad, self.stats = predictor, int(input_rate), vad, stats
        self.batch_size = max(1, int(batch_size))
        self.rate = predictor.sample_rate
        self._resampler = self._new_resampler(self.input_rate, self.rate)
        # the detectors run at 16 kHz; a model at another rate gets its own copy for them
        self._vad_resampler = self._new_resampler(self.rate, vad.sample_rate) if vad is not None else None
        self._slicer = WindowSlicer(predictor.clip_samples, predictor.hop_samples) if vad is None else None
        self._history = np.zeros(0, np.float32)
        self._history_start = 0  # stream sample of _history[0]
        look_back = vad.min_speech_seconds + vad.pad_seconds if vad is not None else 0.0
        self._history_samples = int((HISTORY_SECONDS + look_back) * self.rate)
        self.total = 0  # model-rate samples received
        self._input_total = 0  # input-rate samples received
        self._segment: _Segment | None = None
        self._n_segments = 0
        self._finished = False

    @staticmethod
    def _new_resampler(src: int, dst: int):
        return soxr.ResampleStream(src, dst, 1, dtype="float32", quality="HQ") if src != dst else None

    # --- input ---------------------------------------------------------------------------

    def push(self, chunk: np.ndarray) -> list[Event]:
        """Add ``[time]`` or ``[time, channels]`` samples at ``input_rate`` (any length,
        float in [-1, 1] or integer PCM); return the events now complete, in time order.

        NaN or infinite samples are replaced by zeros and marked with a
        :class:`StreamIssue`.

        Raises:
            ValueError: a chunk of more than two dimensions, or a push after :meth:`finish`.
        """
        if self._finished:
            raise ValueError("push() after finish(): start a new StreamingPredictor for a new stream")
        mono, events = self._mono(chunk)
        self._input_total += mono.shape[0]
        out = self._resampler.resample_chunk(mono, last=False) if self._resampler is not None else mono
        return events + self._process(np.ascontiguousarray(out, np.float32), last=False)

    def mark_dropped(self, message: str = "input overflow: the audio device dropped frames") -> list[Event]:
        """Mark a gap the source reported (e.g. PortAudio's input overflow) at the current time."""
        return [StreamIssue("overflow", self.total / self.rate, message)]

    def finish(self) -> list[Event]:
        """End of the stream: flush the resampler, close an open segment, and classify
        the last window (aligned to the stream's end, as ``predict.py`` does)."""
        if self._finished:
            return []
        out = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True) if self._resampler is not None else np.zeros(0, np.float32)
        events = self._process(np.ascontiguousarray(out, np.float32), last=True)
        self._finished = True
        return events

    def _mono(self, chunk) -> tuple[np.ndarray, list[Event]]:
        x = np.asarray(chunk)
        if x.ndim > 2:
            raise ValueError(f"a chunk must be [time] or [time, channels], got shape {x.shape}")
        if np.issubdtype(x.dtype, np.integer):  # PCM: full scale of the integer type = 1.0
            x = x.astype(np.float32) / float(2 ** (8 * x.dtype.itemsize - 1))
        x = x.astype(np.float32, copy=False)
        if x.ndim == 2:  # downmix: the mean of the channels, as load_audio and AudioStream do
            x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
        mono = x
        events: list[Event] = []
        bad = ~np.isfinite(mono)
        if bad.any():
            t = self._input_total / self.input_rate
            events.append(StreamIssue("nan", t, f"{int(bad.sum())} NaN or infinite samples at {t:.2f} s replaced by silence"))
            mono = np.where(bad, np.float32(0), mono)
        return np.ascontiguousarray(mono, np.float32), events

    # --- model-rate audio -------------------------------------------------------------------

    def _process(self, samples: np.ndarray, last: bool) -> list[Event]:
        if self.vad is None:
            windows = list(self._slicer.push(samples)) if samples.size else []
            self.total += samples.shape[0]
            events: list[Event] = []
            if last:
                if self._slicer.total < self.predictor.min_samples:
                    if self._slicer.total:
                        events.append(StreamIssue("too_short", self.total / self.rate, f"the stream was {self.total / self.rate * 1000:.1f} ms "
                                                  f"long, shorter than one analysis window; nothing classified"))
                else:
                    windows += list(self._slicer.finish())
            return self._classify([(w, 0, None) for w in windows]) + events
        return self._process_vad(samples, last)

    def _process_vad(self, samples: np.ndarray, last: bool) -> list[Event]:
        self._history = np.concatenate([self._history, samples]) if self._history.size else samples.copy()
        self.total += samples.shape[0]
        vad_in = samples
        if self._vad_resampler is not None:
            vad_in = self._vad_resampler.resample_chunk(samples, last=last)
        vad_events = list(self.vad.push(vad_in))
        if last:
            vad_events += list(self.vad.finish())
        events: list[Event] = []
        pending: list[tuple[Window, int, _Segment]] = []
        for ve in vad_events:
            if isinstance(ve, SegmentStarted):
                self._segment = _Segment(self._n_segments, self._sample(ve.start), self.predictor)
                self._n_segments += 1
                events += self._classify(pending)
                pending = []
                events.append(SegmentStart(self._segment.index, self._segment.start / self.rate))
            elif isinstance(ve, SegmentEnded) and self._segment is not None:
                seg = self._segment
                end = max(self._sample(ve.end), seg.fed)
                pending += self._feed(seg, end)
                pending += [(w, seg.start, seg) for w in seg.slicer.finish()]
                events += self._classify(pending)
                pending = []
                events.append(self._segment_end(seg, end))
                self._segment = None
        if self._segment is not None:
            # audio before scored - min_silence surely belongs to the open segment
            safe = self._sample(self.vad.scored_seconds - self.vad.min_silence_seconds)
            pending += self._feed(self._segment, min(safe, self.total))
        events += self._classify(pending)
        self._trim_history()
        return events

    def _sample(self, seconds: float) -> int:
        return max(0, min(int(round(seconds * self.rate)), self.total))

    def _feed(self, seg: _Segment, until: int) -> list[tuple[Window, int, _Segment]]:
        if until <= seg.fed:
            return []
        if seg.fed < self._history_start:  # cannot happen with the look-back kept in _history_samples
            raise RuntimeError(f"segment audio from {seg.fed / self.rate:.2f} s was already dropped from the history")
        audio = self._history[seg.fed - self._history_start:until - self._history_start]
        seg.square_sum += float(np.sum(np.square(audio, dtype=np.float64)))
        seg.fed = until
        return [(w, seg.start, seg) for w in seg.slicer.push(audio)]

    def _trim_history(self) -> None:
        keep_from = self.total - self._history_samples
        if self._segment is not None:
            keep_from = min(keep_from, self._segment.fed)
        keep_from = max(keep_from, self._history_start)
        if keep_from > self._history_start:
            self._history = self._history[keep_from - self._history_start:].copy()
            self._history_start = keep_from

    def _segment_end(self, seg: _Segment, end: int) -> SegmentEnd:
        mean_square = seg.square_sum / max(end - seg.start, 1)
        dbfs = max(10.0 * math.log10(mean_square), DBFS_FLOOR) if mean_square > 0 else DBFS_FLOOR  # as energy_dbfs
        if seg.voiced == 0:
            return SegmentEnd(seg.index, seg.start / self.rate, end / self.rate, SILENCE, None, {}, seg.windows, dbfs)
        mean = seg.prob_sum / seg.voiced
        k = int(np.argmax(mean))
        names = self.predictor.class_names
        return SegmentEnd(seg.index, seg.start / self.rate, end / self.rate, names[k], float(mean[k]),
                          {c: float(v) for c, v in zip(names, mean, strict=True)}, seg.windows, dbfs)

    def _classify(self, items: list[tuple[Window, int, _Segment | None]]) -> list[Event]:
        """Windows (with the stream sample their indices count from) -> results, in order."""
        p = self.predictor
        results = []
        voiced = []
        for w, offset, seg in items:
            r = WindowResult((w.start + offset) / self.rate, (w.end + offset) / self.rate, w.energy_dbfs,
                             segment=seg.index if seg is not None else None)
            results.append(r)
            if seg is not None:
                seg.windows += 1
            if p.silence_dbfs is None or w.energy_dbfs >= p.silence_dbfs:
                voiced.append((r, w, seg))
        for i in range(0, len(voiced), self.batch_size):
            part = voiced[i:i + self.batch_size]
            probs = p.probabilities(np.stack([w.samples for _, w, _ in part]), self.stats)
            for (r, _, seg), pr in zip(part, probs, strict=True):
                k = int(np.argmax(pr))
                r.label, r.confidence = p.class_names[k], float(pr[k])
                r.probabilities = {c: float(v) for c, v in zip(p.class_names, pr, strict=True)}
                if seg is not None:
                    seg.prob_sum += pr
                    seg.voiced += 1
        return list(results)


def file_chunks(path: str | Path, chunk_seconds: float = 0.1) -> tuple[int, Iterator[np.ndarray]]:
    """``(sample rate, chunks)`` of an audio file at its own rate, mono, ``chunk_seconds`` each
    (as a microphone would deliver them; the streaming predictor resamples).

    Raises:
        AudioDecodeError: the file cannot be opened (when called) or holds NaN/infinite
            samples (while iterating).
    """
    from ser_lightning.data.streaming import audio_info

    rate = audio_info(path).sample_rate
    stream = AudioStream(path, rate, block_seconds=chunk_seconds)

    def chunks() -> Iterator[np.ndarray]:
        with stream:
            yield from stream.blocks()

    return rate, chunks()


def run_stream(live: StreamingPredictor, chunks: Iterable[np.ndarray]) -> Iterator[Event]:
    """Push every chunk, then finish; yield the events as they come."""
    for chunk in chunks:
        yield from live.push(chunk)
    yield from live.finish()


def predict_segments(predictor: Predictor, inputs: list, vad: VoiceActivityDetector, stats=None) -> list[Prediction]:
    """``predict.py segmenter=vad``: one timeline row per speech segment of each input.

    Each input is decoded block by block (:class:`~ser_lightning.data.streaming.AudioStream`)
    through a :class:`StreamingPredictor` with ``vad``; a segment's row has its start,
    end, energy and mean probabilities over its windows. The input's summary is the
    mean over all its non-silent windows, as with fixed windows. A speaker-normalised
    model uses ``stats`` (a speaker's ``(mean, std)``, e.g. from enrolment recordings)
    when given, else each input's own statistics (``speaker_stats=input``) or the
    training statistics (``speaker_stats=training``).

    Returns:
        One :class:`~ser_lightning.inference.outputs.Prediction` per input; an input that cannot
        be decoded carries its ``error``, one without speech is labelled ``"silence"``.

    Raises:
        ValueError: no detector (``vad=none``), or a speaker-normalised model with
            ``speaker_stats`` other than ``input`` or ``training``.
    """
    from ser_lightning.errors import AudioDecodeError

    if vad is None:
        raise ConfigError("segmenter=vad needs a voice activity detector: vad=silero, webrtc or energy")
    policy = getattr(predictor, "speaker_stats", "input")
    if predictor.speaker_normalized and stats is None and policy == "enrol":
        stats = predictor.enrolment_stats
    if predictor.speaker_normalized and stats is None and policy not in ("input", "training"):
        raise ConfigError(f"segmenter=vad takes speaker statistics per input or from training, not speaker_stats={policy}")
    out = []
    for item in inputs:
        source = str(item)
        try:
            input_stats = stats
            if predictor.speaker_normalized and stats is None and policy == "input":
                with AudioStream(Path(item), predictor.sample_rate) as stream:
                    input_stats = predictor.statistics(stream.blocks())
            vad.reset()
            live = StreamingPredictor(predictor, predictor.sample_rate, vad=vad, stats=input_stats)
            segments, prob_sum, voiced = [], np.zeros(len(predictor.class_names)), 0
            with AudioStream(Path(item), predictor.sample_rate) as stream:
                for event in run_stream(live, stream.blocks()):
                    if isinstance(event, SegmentEnd):
                        segments.append(event.as_window_prediction())
                    elif isinstance(event, WindowResult) and event.probabilities:
                        prob_sum += np.array([event.probabilities[c] for c in predictor.class_names])
                        voiced += 1
        except (AudioDecodeError, ValueError) as exc:
            out.append(Prediction(source, error=str(exc)))
            continue
        duration = live.total / predictor.sample_rate
        if not voiced:
            note = "no speech found by the VAD" if not segments else "every speech window is below the silence threshold"
            out.append(Prediction(source, SILENCE, duration=duration, windows=segments, note=note))
            continue
        mean = prob_sum / voiced
        k = int(np.argmax(mean))
        out.append(Prediction(source, predictor.class_names[k], float(mean[k]),
                              {c: float(v) for c, v in zip(predictor.class_names, mean, strict=True)}, duration=duration,
                              windows=segments, note=f"{len(segments)} speech segments ({vad.backend} VAD)"))
    return out
