"""Cache of decoded, mono, resampled waveforms.

The first use decodes every file once (in parallel threads: libsndfile and soxr work
outside the GIL) and streams the waves into one float32 array of all samples
(``<cache_dir>/<key>.npy``) plus their offsets (``<key>.json``); that run and all later
ones memory-map it and never decode again. The key hashes the sample rate and each file's path, size and modification time,
so a changed corpus or sample rate gets a new cache instead of stale audio. With
``trim`` (``data.trim=vad|energy``) each wave is cut to its speech before it is stored
(:func:`ser_lightning.data.vad.trim_silence`), and the method is part of the key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_lightning.data.audio import load_audio
from ser_lightning.errors import AudioDecodeError, ConfigError

log = logging.getLogger(__name__)
CACHE_VERSION = 1  # the file layout (one .npy + offsets JSON); bump when it changes
#: ``data.trim``: cut leading/trailing silence with Silero VAD, with the energy VAD, or not at all.
TRIM_METHODS = ("none", "vad", "energy")


@dataclass
class DecodedAudio:
    """Waveforms of a list of files.

    Attributes:
        samples: ``[total_samples]`` float32, all good files back to back (may be a
            read-only memory map).
        offsets: ``[n_files + 1]`` int64; file ``i`` is ``samples[offsets[i]:offsets[i+1]]``.
        errors: ``{path: reason}`` for the files that could not be used (their slice is empty).
        sample_rate: Hz.
    """

    samples: np.ndarray
    offsets: np.ndarray
    errors: dict[str, str]
    sample_rate: int

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def wave(self, i: int) -> np.ndarray:
        """``[time]`` samples of file ``i`` (empty for a file in :attr:`errors`)."""
        return self.samples[self.offsets[i]:self.offsets[i + 1]]

    def seconds(self, i: int) -> float:
        """Duration of file ``i`` in seconds."""
        return float(self.offsets[i + 1] - self.offsets[i]) / self.sample_rate


def file_fingerprint(path: str) -> str:
    """``path|size|mtime_ns`` of a file (``path|missing`` when it cannot be read): what the
    waveform and feature caches hash to notice a changed or replaced file."""
    try:
        st = os.stat(path)
        return f"{path}|{st.st_size}|{st.st_mtime_ns}"
    except OSError:
        return f"{path}|missing"


def cache_key(paths: list[str], sample_rate: int) -> str:
    """Hash of the sample rate and every file's path, size and mtime."""
    h = hashlib.sha1(f"v{CACHE_VERSION}:{sample_rate}".encode())
    for p in paths:
        h.update(f"{file_fingerprint(p)}\n".encode())
    return h.hexdigest()[:20]


_TRIM_DETECTORS = threading.local()  # one detector per decoding thread (Silero's model keeps a state)


def _trimmed(wave: np.ndarray, sample_rate: int, trim: str) -> np.ndarray:
    from ser_lightning.data.vad import VoiceActivityDetector, trim_silence

    detector = getattr(_TRIM_DETECTORS, trim, None)
    if detector is None:
        detector = VoiceActivityDetector("silero" if trim == "vad" else "energy")
        setattr(_TRIM_DETECTORS, trim, detector)
    return trim_silence(wave, sample_rate, trim, detector)


def _decode_one(path: str, sample_rate: int, min_samples: int, trim: str = "none") -> tuple[np.ndarray | None, str | None]:
    try:
        wave = load_audio(path, sample_rate)
    except AudioDecodeError as exc:
        return None, str(exc)
    except MemoryError:
        return None, f"{path}: too large to decode in memory"
    if trim != "none" and np.any(wave):
        wave = _trimmed(wave, sample_rate, trim)
    if wave.shape[0] < min_samples:
        return None, f"{path}: too short ({wave.shape[0] / sample_rate:.3f} s < {min_samples / sample_rate:.3f} s)"
    if not np.any(wave):
        return None, f"{path}: digital silence (all samples are zero)"
    return wave, None


def check_trim(trim: str, sample_rate: int) -> None:
    """Raise ``ValueError`` for an unknown ``data.trim`` or one the detectors cannot run at ``sample_rate``."""
    from ser_lightning.data.vad import VAD_SAMPLE_RATE

    if trim not in TRIM_METHODS:
        raise ConfigError(f"data.trim={trim} is unknown; allowed: {list(TRIM_METHODS)}")
    if trim != "none" and sample_rate != VAD_SAMPLE_RATE:
        raise ConfigError(f"data.trim={trim} needs data.sample_rate={VAD_SAMPLE_RATE} (the voice activity detectors' rate), got {sample_rate}")


def _decode_in_order(paths: list[str], sample_rate: int, min_seconds: float, workers: int | None,
                     trim: str = "none") -> Iterator[tuple[np.ndarray | None, str | None]]:
    """``(wave or None, error or None)`` per path, in order, decoded by a thread pool."""
    min_samples = int(round(min_seconds * sample_rate))
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        yield from pool.map(lambda p: _decode_one(p, sample_rate, min_samples, trim), paths)


def decode_files(paths: list[str], sample_rate: int, min_seconds: float = 0.0, workers: int | None = None,
                 trim: str = "none") -> DecodedAudio:
    """Decode ``paths`` in parallel into memory; unusable files are recorded, not raised.

    Args:
        paths: audio files.
        sample_rate: target rate in Hz.
        min_seconds: files shorter than this (after decoding) count as unusable.
        workers: decoding threads (default: the number of CPUs).
        trim: one of :data:`TRIM_METHODS` (applied before the ``min_seconds`` check).

    Raises:
        ValueError: an unknown ``trim``.
    """
    check_trim(trim, sample_rate)
    results = list(_decode_in_order(paths, sample_rate, min_seconds, workers, trim))
    lengths = np.array([0 if w is None else w.shape[0] for w, _ in results], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    samples = np.empty(int(offsets[-1]), dtype=np.float32)
    for i, (w, _) in enumerate(results):
        if w is not None:
            samples[offsets[i]:offsets[i + 1]] = w
    errors = {p: err for p, (_, err) in zip(paths, results, strict=True) if err is not None}
    return DecodedAudio(samples, offsets, errors, sample_rate)


def load_or_decode(
    paths: list[str],
    sample_rate: int,
    cache_dir: str | Path | None,
    min_seconds: float = 0.0,
    trim: str = "none",
) -> DecodedAudio:
    """Return the decoded waveforms of ``paths``, from the disk cache when it is valid.

    Every file that cannot be used (missing, not audio, a header or data that libsndfile
    cannot decode, too short, digital silence) goes into ``errors`` with its reason; the
    other files are still decoded. With ``cache_dir=None`` the audio is decoded into
    memory and nothing is written. A damaged cache (edited, truncated or not matching
    ``paths``) is decoded again, not trusted. ``trim`` (:data:`TRIM_METHODS`) cuts each
    wave's leading and trailing silence before it is stored; it is part of the cache key.
    The cache file is written atomically (temporary name, then rename), so an
    interrupted first run never leaves a half-written cache behind.

    Raises:
        ValueError: see :func:`check_trim`.
    """
    check_trim(trim, sample_rate)
    if cache_dir is None:
        return decode_files(paths, sample_rate, min_seconds, trim=trim)
    cache_dir = Path(cache_dir)
    key = cache_key(paths, sample_rate) + f"-min{min_seconds:g}" + (f"-trim{trim}" if trim != "none" else "")
    data_file, meta_file = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
    if data_file.is_file() and meta_file.is_file():
        cached = _read_cache(data_file, meta_file, paths, sample_rate)
        if cached is not None:
            log.info("waveform cache hit: %s", data_file)
            return cached
    log.info("decoding %d files at %d Hz into cache %s", len(paths), sample_rate, data_file)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_file.with_suffix(f".tmp{os.getpid()}.npy")
    offsets, errors = _decode_to_npy(paths, sample_rate, min_seconds, tmp, trim)
    meta_tmp = meta_file.with_suffix(f".tmp{os.getpid()}")
    meta_tmp.write_text(json.dumps({"offsets": offsets.tolist(), "errors": errors, "sample_rate": sample_rate, "paths": paths}))
    os.replace(tmp, data_file)
    os.replace(meta_tmp, meta_file)
    # The run reads the file it just wrote through a memory map: the decoded corpus is
    # never held in this process's memory as a whole (docs/PERFORMANCE.md, memory).
    return DecodedAudio(np.load(data_file, mmap_mode="r"), offsets, errors, sample_rate)


def _read_cache(data_file: Path, meta_file: Path, paths: list[str], sample_rate: int) -> DecodedAudio | None:
    """The cached waves, or ``None`` (logged) when the cache files are damaged or do not
    describe ``paths``: the caller then decodes again, so a damaged cache costs time,
    never a crash or the wrong audio. Files that failed to decode when the cache was
    written come back in ``errors`` with their reasons (they are not retried: the key
    changes when a file does)."""
    try:
        meta = json.loads(meta_file.read_text())
        offsets = np.asarray(meta["offsets"], dtype=np.int64)
        errors = {str(k): str(v) for k, v in meta["errors"].items()}
        samples = np.load(data_file, mmap_mode="r")
        problems = []
        if meta.get("paths", paths) != paths:
            problems.append("it lists other files")
        if int(meta["sample_rate"]) != sample_rate:
            problems.append(f"its rate is {meta['sample_rate']} Hz")
        if offsets.shape != (len(paths) + 1,) or samples.ndim != 1 or samples.shape[0] != offsets[-1]:
            problems.append(f"{samples.shape} samples do not match its {offsets.shape[0]} offsets")
        if not set(errors) <= set(paths):
            problems.append("its errors name files it does not list")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:  # half-written, edited or foreign files
        problems = [f"{type(exc).__name__}: {exc}"]
    if problems:
        log.warning("waveform cache %s is damaged (%s); decoding the files again", data_file, "; ".join(problems))
        return None
    return DecodedAudio(samples, offsets, errors, sample_rate)


def _decode_to_npy(paths: list[str], sample_rate: int, min_seconds: float, target: Path, trim: str = "none") -> tuple[np.ndarray, dict[str, str]]:
    """Decode ``paths`` straight into the ``.npy`` file ``target`` (1-D float32), each
    wave written as soon as it is decoded; returns ``(offsets, errors)``.

    The NPY header (format 1.0, NEP 1) is 128 bytes for any 1-D float32 length below
    10**15, so a placeholder header is written first and the real one over it at the end.
    """
    header = {"descr": np.dtype(np.float32).str, "fortran_order": False}
    lengths, errors = [], {}
    with open(target, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {**header, "shape": (0,)})
        data_start = fh.tell()
        for path, (wave, err) in zip(paths, _decode_in_order(paths, sample_rate, min_seconds, None, trim), strict=True):
            if err is not None:
                errors[path] = err
            lengths.append(0 if wave is None else wave.shape[0])
            if wave is not None:
                fh.write(wave.astype("<f4", copy=False).tobytes())
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)
        fh.seek(0)
        np.lib.format.write_array_header_1_0(fh, {**header, "shape": (int(offsets[-1]),)})
        if fh.tell() != data_start:
            raise RuntimeError(f"{target}: NPY header changed size ({data_start} -> {fh.tell()} bytes)")
    return offsets, errors
