"""Long recordings in bounded memory: block-wise decoding and resampling, then windows.

A one-hour file at 48 kHz stereo is 1.4 GB as float32; decoded whole (as training's
:func:`ser_lightning.data.audio.load_audio` does for short clips) it would not fit a small
machine. Here ``soundfile`` reads fixed-size blocks, each block is downmixed (mean of the
channels, as in ``load_audio``) and resampled by a streaming ``soxr.ResampleStream``
(bit-identical to ``soxr.resample`` of the whole signal, same "HQ" quality), and
:class:`WindowSlicer` cuts the stream into overlapping analysis windows while holding no
more than one window plus one block. Memory stays bounded by the block and window
sizes, whatever the file's length.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ser_lightning.data.audio import fit_length
from ser_lightning.errors import AudioDecodeError

#: Samples read from the file per block, in seconds of source audio.
BLOCK_SECONDS = 10.0
#: Floor of :func:`energy_dbfs` for digital silence (``10 log10`` of 1e-20).
DBFS_FLOOR = -200.0


def energy_dbfs(samples: np.ndarray) -> float:
    """Mean energy of ``samples`` in dB relative to full scale (dBFS).

    ``10 log10(mean(x^2))`` with full scale = amplitude 1.0, so a constant at +-1.0
    (full-scale square wave) is 0 dBFS and a full-scale sine is -3.01 dBFS. Digital
    silence gives :data:`DBFS_FLOOR`.

    Args:
        samples: ``[time]`` float samples in [-1, 1].
    """
    if samples.size == 0:
        return DBFS_FLOOR
    mean_square = float(np.mean(np.square(samples, dtype=np.float64)))
    return max(10.0 * math.log10(mean_square), DBFS_FLOOR) if mean_square > 0 else DBFS_FLOOR


@dataclass
class AudioInfo:
    """What the file header says.

    Attributes:
        sample_rate: source rate in Hz.
        channels: channel count.
        frames: frames the decoder will deliver.
        declared_frames: frames the header declares (differs from ``frames`` in a
            truncated WAV), ``None`` when the header does not say.
    """

    sample_rate: int
    channels: int
    frames: int
    declared_frames: int | None = None

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0

    @property
    def truncated(self) -> bool:
        return self.declared_frames is not None and self.declared_frames > self.frames


# libsndfile's parse log for a WAV whose data chunk runs past the end of the file:
# "data : 96000 (should be 47978)".
_DATA_CHUNK_LOG = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def _open(path: Path) -> sf.SoundFile:
    """Open ``path`` for reading with a specific message for each way it can fail.

    Raises:
        AudioDecodeError: missing path, a folder, no read permission, an empty file, not
            audio (or a format libsndfile does not know), or a header broken beyond use.
    """
    if not path.exists():
        raise AudioDecodeError(f"{path}: no such file")
    if path.is_dir():
        raise AudioDecodeError(f"{path}: is a folder, not an audio file")
    try:
        size = path.stat().st_size
        with path.open("rb"):
            pass
    except OSError as exc:
        raise AudioDecodeError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if size == 0:
        raise AudioDecodeError(f"{path}: empty file (0 bytes)")
    try:
        return sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        detail = str(exc).split(": ", 1)[-1]
        if "not recognised" in detail.lower():
            raise AudioDecodeError(f"{path}: not an audio file libsndfile can read ({detail})") from exc
        raise AudioDecodeError(f"{path}: cannot decode as audio ({detail})") from exc


def audio_info(path: str | Path) -> AudioInfo:
    """Read the header of ``path`` (no samples decoded).

    Raises:
        AudioDecodeError: see :class:`AudioStream`.
    """
    with _open(Path(path)) as fh:
        return _info(fh)


def _info(fh: sf.SoundFile) -> AudioInfo:
    declared = None
    data_chunk = _DATA_CHUNK_LOG.search(fh.extra_info or "")
    block_align = re.search(r"Block Align\s*:\s*(\d+)", fh.extra_info or "")
    if data_chunk and block_align and int(block_align.group(1)) > 0:
        declared = int(data_chunk.group(1)) // int(block_align.group(1))
    return AudioInfo(fh.samplerate, fh.channels, fh.frames, declared)


class AudioStream:
    """An open audio file, decoded block by block as mono float32 at ``sample_rate``.

    Use as a context manager (or call :meth:`close`)::

        with AudioStream("session.flac", 16000) as stream:
            print(stream.info.seconds)
            for block in stream.blocks():  # [time] float32 at 16 kHz
                ...

    Args:
        path: any file libsndfile reads (the format comes from the header).
        sample_rate: output rate in Hz.
        block_seconds: source audio read per block, in seconds.

    Raises:
        AudioDecodeError: when opening: missing path, a folder, no read permission,
            an empty (0-byte) file, not audio, a header broken beyond use, or zero-length
            audio (no samples). While reading (:meth:`blocks`): NaN or infinite
            samples, or data that libsndfile cannot decode.
    """

    def __init__(self, path: str | Path, sample_rate: int, block_seconds: float = BLOCK_SECONDS):
        self.path = Path(path)
        self.sample_rate = sample_rate
        self._file = _open(self.path)
        self.info = _info(self._file)
        if self.info.frames == 0 or self.info.sample_rate <= 0:
            self._file.close()
            raise AudioDecodeError(f"{self.path}: no samples (zero-length audio)")
        self.block_frames = max(1, int(block_seconds * self.info.sample_rate))

    def blocks(self) -> Iterator[np.ndarray]:
        """Yield ``[time]`` float32 blocks at ``sample_rate``; their concatenation equals
        :func:`ser_lightning.data.audio.load_audio` of the file.

        Raises:
            AudioDecodeError: NaN/infinite samples, or libsndfile failing to decode a
                block (corrupted data after a valid header, e.g. "flac decoder lost
                sync"); raised at the block concerned, earlier blocks have been yielded.
        """
        fh, src_rate = self._file, self.info.sample_rate
        resampler = None
        if src_rate != self.sample_rate:
            resampler = soxr.ResampleStream(src_rate, self.sample_rate, 1, dtype="float32", quality="HQ")
        delivered = 0
        while True:
            try:
                block = fh.read(self.block_frames, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, OSError) as exc:
                # Damage after the header (a FLAC frame that lost sync, a read error) shows
                # only when its block is decoded: the file fails as a whole, like load_audio.
                detail = str(exc).split(": ", 1)[-1] if isinstance(exc, sf.LibsndfileError) else str(exc)
                raise AudioDecodeError(
                    f"{self.path}: cannot decode as audio: the data is corrupted after {delivered / src_rate:.1f} s ({detail})") from exc
            last = block.shape[0] < self.block_frames
            mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
            if not np.isfinite(mono).all():
                raise AudioDecodeError(f"{self.path}: contains NaN or infinite samples (near {delivered / src_rate:.1f} s)")
            delivered += mono.shape[0]
            out = resampler.resample_chunk(mono, last=last) if resampler is not None else mono
            if out.size:
                yield np.ascontiguousarray(out, dtype=np.float32)
            if last:
                return

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "AudioStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class Window:
    """One analysis window of a stream.

    Attributes:
        start: first sample (at the stream's rate).
        end: one past the last real sample (``< start + len(samples)`` when padded).
        samples: ``[window]`` float32, zero-padded (centred) for a stream shorter than
            one window.
        energy_dbfs: :func:`energy_dbfs` of the real samples.
    """

    start: int
    end: int
    samples: np.ndarray
    energy_dbfs: float


class WindowSlicer:
    """Cut a stream of blocks into windows of ``window`` samples every ``hop`` samples.

    Windows start at ``0, hop, 2 hop, ...``; when the last of them ends before the
    stream does, one more window ends exactly at the stream's end, so every sample is
    covered. A stream shorter than one window gives one window, centred and zero-padded
    (as evaluation crops/pads clips in training). The buffer holds at most
    ``window + block`` samples.

    Args:
        window: window length in samples (> 0).
        hop: hop between window starts in samples (> 0).

    Raises:
        ValueError: a non-positive window or hop.
    """

    def __init__(self, window: int, hop: int):
        if window <= 0 or hop <= 0:
            raise ValueError(f"window and hop must be positive samples, got window={window}, hop={hop}")
        self.window, self.hop = window, hop
        self._buffer = np.zeros(0, np.float32)
        self._buffer_start = 0  # stream index of _buffer[0]
        self._next_start = 0
        self._last_start: int | None = None
        self.total = 0  # samples pushed so far

    def push(self, block: np.ndarray) -> Iterator[Window]:
        """Add ``[time]`` samples; yield the windows now complete."""
        self._buffer = np.concatenate([self._buffer, block]) if self._buffer.size else np.asarray(block, np.float32)
        self.total += block.shape[0]
        while self._next_start + self.window <= self.total:
            yield self._window(self._next_start, self.window)
            self._next_start += self.hop
        # Keep what the next regular window needs, and the last `window` samples for a
        # final window aligned to the end of the stream.
        keep_from = max(self._buffer_start, min(self._next_start, self.total - self.window))
        if keep_from > self._buffer_start:
            self._buffer = self._buffer[keep_from - self._buffer_start:].copy()
            self._buffer_start = keep_from

    def finish(self) -> Iterator[Window]:
        """Yield the last window (aligned to the end) or, for a stream shorter than one
        window, the single padded window."""
        if self.total == 0:
            return
        if self._last_start is None:  # shorter than one window
            real = self._buffer[: self.total]
            yield Window(0, self.total, fit_length(real, self.window), energy_dbfs(real))
        elif self._last_start + self.window < self.total:
            yield self._window(self.total - self.window, self.window)

    def _window(self, start: int, length: int) -> Window:
        offset = start - self._buffer_start
        samples = self._buffer[offset:offset + length].copy()  # not a view pinning the buffer
        self._last_start = start
        return Window(start, start + length, samples, energy_dbfs(samples))


