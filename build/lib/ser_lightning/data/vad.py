"""Voice activity detection (VAD): where in a waveform someone speaks.

Three backends score short frames of 16 kHz audio; one :class:`SegmentTracker` turns
their per-frame decisions into speech segments, the same way for a whole waveform
(:meth:`VoiceActivityDetector.segments`) and for an endless stream
(:meth:`VoiceActivityDetector.push` / :meth:`~VoiceActivityDetector.finish`, which yield
segment start and end events as soon as they are certain):

- ``silero``: Silero VAD (``silero-vad`` package, MIT; its TorchScript model ships in the
  wheel, nothing is downloaded), a small neural network giving a speech probability per
  32 ms frame (512 samples at 16 kHz). The most robust to noise and music.
- ``webrtc``: the WebRTC VAD (``webrtcvad-wheels``, Google's GMM-based detector from
  WebRTC, BSD), a yes/no per 30 ms frame; ``aggressiveness`` 0..3 (3 rejects the most
  non-speech).
- ``energy``: mean frame energy above a dBFS threshold
  (:func:`ser_lightning.data.streaming.energy_dbfs`); no dependency, fooled by any loud noise.

The hysteresis and padding follow Silero's ``get_speech_timestamps`` (speech starts at a
frame scoring ``>= threshold``, ends after ``min_silence_seconds`` of frames scoring
``< threshold - 0.15``, segments shorter than ``min_speech_seconds`` are dropped and the
rest padded by ``pad_seconds`` on each side), applied to every backend.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ser_lightning.data.streaming import energy_dbfs
from ser_lightning.errors import ConfigError, VADUnavailableError

#: Names accepted by ``vad=`` (``none``: no VAD, every sample counts as speech).
VAD_BACKENDS = ("silero", "webrtc", "energy", "none")
#: Rate the detectors run at, in Hz (Silero and WebRTC support 16 kHz; the models of
#: this project are trained at 16 kHz too).
VAD_SAMPLE_RATE = 16000


@dataclass(frozen=True)
class SpeechSegment:
    """A stretch of speech.

    Attributes:
        start: start in seconds from the beginning of the waveform or stream.
        end: end in seconds.
    """

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class SegmentStarted:
    """Streaming event: speech began at ``start`` seconds (emitted once it lasted
    ``min_speech_seconds``, so it is never retracted)."""

    start: float


@dataclass(frozen=True)
class SegmentEnded:
    """Streaming event: the speech segment ``[start, end]`` (seconds) is over (emitted
    after ``min_silence_seconds`` of silence, or at the end of the stream)."""

    start: float
    end: float


# --- frame scorers -------------------------------------------------------------------


class _Scorer:
    """Scores consecutive frames of ``frame`` samples at 16 kHz: speech probability in [0, 1]."""

    frame: int

    def score(self, frame: np.ndarray) -> float:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the stream so far (a new, unrelated waveform follows)."""


class _EnergyScorer(_Scorer):
    frame = 480  # 30 ms

    def __init__(self, threshold_dbfs: float):
        self.threshold_dbfs = threshold_dbfs

    def score(self, frame: np.ndarray) -> float:
        # without the frame's mean: a DC offset (SAVEE's recordings have one) is not speech
        return 1.0 if energy_dbfs(frame - frame.mean(dtype=np.float32)) >= self.threshold_dbfs else 0.0


class _WebRTCScorer(_Scorer):
    frame = 480  # 30 ms: WebRTC accepts 10, 20 or 30 ms frames

    def __init__(self, aggressiveness: int):
        try:
            import webrtcvad
        except ImportError as exc:
            raise VADUnavailableError("vad=webrtc needs the webrtcvad-wheels package: pip install webrtcvad-wheels") from exc
        if aggressiveness not in (0, 1, 2, 3):
            raise ConfigError(f"vad aggressiveness must be 0, 1, 2 or 3, got {aggressiveness}")
        self._make = lambda: webrtcvad.Vad(int(aggressiveness))
        self._vad = self._make()

    def reset(self) -> None:
        self._vad = self._make()  # its noise model adapts to the stream heard so far

    def score(self, frame: np.ndarray) -> float:
        pcm = (np.clip(frame, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()  # WebRTC takes 16-bit PCM
        return 1.0 if self._vad.is_speech(pcm, VAD_SAMPLE_RATE) else 0.0


_SILERO_LOCK = threading.Lock()


class _SileroScorer(_Scorer):
    frame = 512  # 32 ms, the only frame the 16 kHz model accepts

    def __init__(self):
        import torch

        try:
            with _SILERO_LOCK:
                threads = torch.get_num_threads()
                # silero_vad.model calls torch.set_num_threads(1) at import; keep the caller's setting
                from silero_vad import load_silero_vad

                self._model = load_silero_vad()  # TorchScript model from the wheel, no download
                torch.set_num_threads(threads)
        except ImportError as exc:
            raise VADUnavailableError("vad=silero needs the silero-vad package: pip install silero-vad") from exc
        self._torch = torch

    def score(self, frame: np.ndarray) -> float:
        with self._torch.inference_mode():
            return float(self._model(self._torch.from_numpy(np.ascontiguousarray(frame, np.float32)), VAD_SAMPLE_RATE).item())

    def reset(self) -> None:
        self._model.reset_states()  # the model carries a recurrent state and 64 samples of context


# --- segments from frame scores --------------------------------------------------------


class SegmentTracker:
    """Per-frame speech scores -> segment start/end events (frame indices in samples).

    Args:
        frame: samples per frame.
        threshold: a frame scoring ``>= threshold`` is speech.
        min_speech: shortest segment kept, in samples.
        min_silence: non-speech (score ``< threshold - 0.15``) that ends a segment, in samples.
        pad: samples added before and after each segment (never overlapping the
            previous segment, never before 0 or past the stream's end).
    """

    def __init__(self, frame: int, threshold: float, min_speech: int, min_silence: int, pad: int):
        self.frame, self.threshold, self.neg_threshold = frame, threshold, max(threshold - 0.15, 0.01)
        self.min_speech, self.min_silence, self.pad = min_speech, min_silence, pad
        self.reset()

    def reset(self) -> None:
        self.position = 0  # samples scored so far
        self._speech_from: int | None = None  # first speech frame of the current candidate
        self._last_speech_end = 0  # end of the last frame scoring >= neg_threshold
        self._announced = False  # the current candidate's start event was emitted
        self._previous_end = 0  # end of the last emitted segment (a pad never overlaps it)

    def update(self, score: float) -> Iterator[tuple[str, int, int]]:
        """Take the next frame's score; yield ``("start", start, 0)`` / ``("end", start, end)``."""
        frame_start, self.position = self.position, self.position + self.frame
        if self._speech_from is None:
            if score >= self.threshold:
                self._speech_from, self._last_speech_end, self._announced = frame_start, self.position, False
            else:
                return
        elif score >= self.neg_threshold:
            self._last_speech_end = self.position
        elif self.position - self._last_speech_end >= self.min_silence:
            yield from self._close(self.position)
            return
        if not self._announced and self._last_speech_end - self._speech_from >= self.min_speech:
            self._announced = True
            yield ("start", self._padded_start(), 0)

    def finish(self, total: int) -> Iterator[tuple[str, int, int]]:
        """End of stream after ``total`` samples: close an open segment."""
        if self._speech_from is not None:
            yield from self._close(total)

    def _padded_start(self) -> int:
        return max(self._speech_from - self.pad, self._previous_end, 0)

    def _close(self, limit: int) -> Iterator[tuple[str, int, int]]:
        long_enough = self._last_speech_end - self._speech_from >= self.min_speech
        if long_enough:
            start, end = self._padded_start(), min(self._last_speech_end + self.pad, limit)
            if not self._announced:
                yield ("start", start, 0)
            yield ("end", start, end)
            self._previous_end = end
        self._speech_from = None


# --- the detector ----------------------------------------------------------------------


class VoiceActivityDetector:
    """Speech segments of 16 kHz audio, for a whole waveform or a stream of chunks.

    Args:
        backend: ``silero``, ``webrtc`` or ``energy`` (see the module docstring).
        threshold: speech probability at which a segment starts (Silero; WebRTC and
            energy frames score 0 or 1).
        energy_dbfs: frame energy counted as speech by the ``energy`` backend, in dBFS
            (-55: at -50 the soft word endings of quiet RAVDESS takes fell outside).
        aggressiveness: WebRTC's mode, 0 (least) .. 3 (most aggressive in rejecting
            non-speech). 3 by default: at 2, WebRTC's adaptive noise model started
            one RAVDESS clip's segment 0.4 s early when it began the stream, but not
            after a second of padding (3 found the same boundaries both ways).
        min_speech_seconds: shorter bursts are not speech (a click, a cough).
        min_silence_seconds: silence that ends a segment (shorter pauses, as between
            words, stay inside it); also the delay before a segment's end is known.
        pad_seconds: audio kept before and after each segment (soft onsets and decays
            score low in every detector).

    Raises:
        ValueError: an unknown backend or a bad setting.
        VADUnavailableError: the backend's package is not installed.
    """

    sample_rate = VAD_SAMPLE_RATE

    def __init__(self, backend: str = "silero", threshold: float = 0.5, energy_dbfs: float = -55.0, aggressiveness: int = 3,
                 min_speech_seconds: float = 0.25, min_silence_seconds: float = 0.3, pad_seconds: float = 0.1):
        if backend == "silero":
            self._scorer: _Scorer = _SileroScorer()
        elif backend == "webrtc":
            self._scorer = _WebRTCScorer(aggressiveness)
        elif backend == "energy":
            self._scorer = _EnergyScorer(energy_dbfs)
        else:
            raise ConfigError(f"vad={backend} is unknown; allowed: {[b for b in VAD_BACKENDS if b != 'none']} (or none: no VAD)")
        if not 0.0 < threshold <= 1.0:
            raise ConfigError(f"vad threshold must be in (0, 1], got {threshold}")
        if min(min_speech_seconds, min_silence_seconds, pad_seconds) < 0:
            raise ConfigError("vad min_speech_seconds, min_silence_seconds and pad_seconds must be >= 0")
        if pad_seconds > min_silence_seconds:
            raise ConfigError(f"vad pad_seconds ({pad_seconds}) must not exceed min_silence_seconds ({min_silence_seconds}): a segment's "
                             f"end would lie in audio not yet heard when its end event is due")
        self.backend = backend
        self.min_speech_seconds, self.min_silence_seconds, self.pad_seconds = float(min_speech_seconds), float(min_silence_seconds), float(pad_seconds)
        sr = self.sample_rate
        self.frame = self._scorer.frame
        self._tracker = SegmentTracker(self.frame, threshold, int(min_speech_seconds * sr), int(min_silence_seconds * sr),
                                       int(pad_seconds * sr))
        self._pending = np.zeros(0, np.float32)  # samples of an incomplete frame
        self.total = 0  # samples pushed since the last reset

    @property
    def scored_seconds(self) -> float:
        """Audio scored so far, in seconds (pushed audio minus an incomplete frame).
        While a segment is open, its end will lie after ``scored_seconds - min_silence_seconds``."""
        return self._tracker.position / self.sample_rate

    def reset(self) -> None:
        """Start a new, unrelated stream."""
        self._scorer.reset()
        self._tracker.reset()
        self._pending = np.zeros(0, np.float32)
        self.total = 0

    def push(self, samples: np.ndarray) -> Iterator[SegmentStarted | SegmentEnded]:
        """Feed ``[time]`` float32 samples at 16 kHz (any chunk size); yield the events now certain.

        Raises:
            ValueError: samples that are not 1-D.
        """
        samples = np.asarray(samples, np.float32)
        if samples.ndim != 1:
            raise ValueError(f"VAD input must be [time] mono samples, got shape {samples.shape}")
        self.total += samples.shape[0]
        buf = np.concatenate([self._pending, samples]) if self._pending.size else samples
        n_frames = buf.shape[0] // self.frame
        for k in range(n_frames):
            for event in self._tracker.update(self._scorer.score(buf[k * self.frame:(k + 1) * self.frame])):
                yield self._event(event)
        self._pending = buf[n_frames * self.frame:].copy()

    def finish(self) -> Iterator[SegmentStarted | SegmentEnded]:
        """End of the stream: score the last partial frame (zero-padded) and close an open segment."""
        if self._pending.size:
            frame = np.zeros(self.frame, np.float32)
            frame[: self._pending.size] = self._pending
            self._pending = np.zeros(0, np.float32)
            for event in self._tracker.update(self._scorer.score(frame)):
                yield self._event(event, limit=self.total)
        for event in self._tracker.finish(self.total):
            yield self._event(event, limit=self.total)

    def segments(self, wave: np.ndarray) -> list[SpeechSegment]:
        """Speech segments of a whole ``[time]`` waveform at 16 kHz (the detector is reset
        before and after, so calls are independent).

        Raises:
            ValueError: samples that are not 1-D.
        """
        self.reset()
        out = [SpeechSegment(e.start, e.end) for e in (*self.push(wave), *self.finish()) if isinstance(e, SegmentEnded)]
        self.reset()
        return out

    def _event(self, event: tuple[str, int, int], limit: int | None = None) -> SegmentStarted | SegmentEnded:
        kind, start, end = event
        sr = self.sample_rate
        if kind == "start":
            return SegmentStarted(start / sr)
        return SegmentEnded(start / sr, min(end, limit if limit is not None else end) / sr)


def build_vad(backend: str | None, **settings) -> VoiceActivityDetector | None:
    """A detector for ``vad=<backend>``; ``None`` for ``none`` (or ``None``).

    Args:
        settings: keyword arguments of :class:`VoiceActivityDetector`; ``None`` values
            keep the defaults.

    Raises:
        ValueError, VADUnavailableError: see :class:`VoiceActivityDetector`.
    """
    if backend in (None, "none"):
        return None
    return VoiceActivityDetector(str(backend), **{k: v for k, v in settings.items() if v is not None})


def trim_silence(wave: np.ndarray, sample_rate: int, method: str, detector: VoiceActivityDetector | None = None) -> np.ndarray:
    """Cut leading and trailing silence: keep ``wave`` from the first speech segment's
    start to the last one's end (pauses inside are kept).

    Args:
        wave: ``[time]`` float32 samples at ``sample_rate`` Hz.
        method: ``vad`` (Silero), ``energy``, or ``none`` (``wave`` unchanged).
        detector: a detector to reuse (``None``: one is built for ``method``).

    Returns:
        ``[time']`` samples (a view of ``wave``); ``wave`` itself when no speech is found,
        so a quiet recording is never emptied.

    Raises:
        ValueError: an unknown method, or ``sample_rate`` other than 16 kHz.
    """
    if method == "none":
        return wave
    if method not in ("vad", "energy"):
        raise ConfigError(f"data.trim={method} is unknown; allowed: vad, energy, none")
    if sample_rate != VAD_SAMPLE_RATE:
        raise ConfigError(f"data.trim needs audio at {VAD_SAMPLE_RATE} Hz (the detectors' rate), got {sample_rate} Hz")
    detector = detector or VoiceActivityDetector("silero" if method == "vad" else "energy")
    found = detector.segments(wave)
    if not found:
        return wave
    start, end = int(round(found[0].start * sample_rate)), int(round(found[-1].end * sample_rate))
    return wave[start:end]
