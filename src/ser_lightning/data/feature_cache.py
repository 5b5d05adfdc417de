"""Per-file disk cache of openSMILE features (eGeMAPS / ComParE), beside the waveform cache.

openSMILE costs about 30 ms of CPU per second of audio for either set (docs/PERFORMANCE.md),
so each file's features are computed once and stored as one ``.npy`` per file and
feature set/level: ``<cache_dir>/<set>-<level>/<key[:2]>/<key>.npy``. Files are shared
between protocols and folds (every RAVDESS fold, leave-one-corpus-out and the combined
runs use the same files), so the cache is per file, not per file list.

The key follows the waveform cache's rules (:func:`ser_lightning.data.cache.cache_key`):
the file's path, size and modification time, the sample rate and ``data.trim`` (they
decide the wave), plus the feature set, level and the ``opensmile`` version; a changed
file or setting gets a new entry, never stale features. The features are computed from
the waveform cache's wave (:func:`ser_lightning.data.cache.load_or_decode`: the one
decode path, 16 kHz mono), so a file the waveform cache cannot use is skipped with its
reason, and a file openSMILE cannot process is skipped with openSMILE's. A damaged entry
(truncated, wrong shape, non-finite) is computed again, not trusted. Entries are
written atomically (temporary name, then rename).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ser_lightning.data.cache import DecodedAudio, file_fingerprint
from ser_lightning.errors import AudioDecodeError
from ser_lightning.transforms.opensmile_features import check_feature_set, extract, n_features, opensmile_version

log = logging.getLogger(__name__)
FEATURE_CACHE_VERSION = 1  # one .npy per file; bump when the layout changes


@dataclass
class ExpertFeatures:
    """openSMILE features of a list of files.

    Attributes:
        values: functionals: ``[n_files, n_features]`` float32 (rows of skipped files
            are NaN); descriptors (``lld``): a list of ``[n_descriptors, frames]`` arrays
            (``None`` for skipped files).
        errors: ``{path: reason}`` of the files without features.
        hits, computed: how many files came from the cache / were computed now.
        seconds: wall time of the call; ``audio_seconds``: audio of the computed files.
    """

    values: np.ndarray | list
    errors: dict[str, str] = field(default_factory=dict)
    hits: int = 0
    computed: int = 0
    seconds: float = 0.0
    audio_seconds: float = 0.0


def feature_key(path: str, sample_rate: int, name: str, level: str, trim: str = "none", version: str | None = None) -> str:
    """Hash of the file's path, size and mtime, the sample rate, ``trim``, the feature
    set and level and the ``opensmile`` version (``version=None``: the installed one)."""
    h = hashlib.sha1(f"v{FEATURE_CACHE_VERSION}:{name}:{level}:{version or opensmile_version()}:{sample_rate}:{trim}".encode())
    h.update(file_fingerprint(path).encode())
    return h.hexdigest()[:24]


def _entry(cache_dir: Path, name: str, level: str, key: str) -> Path:
    return cache_dir / f"{name}-{level}" / key[:2] / f"{key}.npy"


def _read_entry(file: Path, expected: int, level: str) -> np.ndarray | None:
    """The cached features (``expected`` functionals, or descriptor rows), or ``None``
    (logged) when the entry is damaged."""
    try:
        values = np.load(file, allow_pickle=False)
        ok = (values.shape == (expected,)) if level == "functionals" else (values.ndim == 2 and values.shape[0] == expected and values.shape[1] > 0)
        if ok and values.dtype == np.float32 and np.all(np.isfinite(values)):
            return values
        problem = f"shape {values.shape}, dtype {values.dtype}"
    except (OSError, ValueError, EOFError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    log.warning("feature cache entry %s is damaged (%s); computing it again", file, problem)
    return None


def _write_entry(file: Path, values: np.ndarray) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(f".tmp{os.getpid()}-{os.urandom(4).hex()}.npy")
    np.save(tmp, values.astype(np.float32, copy=False))
    os.replace(tmp, file)


def load_or_extract(paths: list[str], audio: DecodedAudio, name, level: str = "functionals",
                    cache_dir: str | Path | None = None, trim: str = "none", workers: int | None = None,
                    wave: Callable[[int], np.ndarray] | None = None) -> ExpertFeatures:
    """openSMILE features (or a frozen encoder's utterance embeddings) of ``paths``, from the
    per-file cache when it holds them.

    Args:
        paths: the files, in the order of ``audio``.
        audio: their decoded waves (:func:`~ser_lightning.data.cache.load_or_decode`);
            a file in ``audio.errors`` is skipped with that reason.
        name, level: an openSMILE set and level (:mod:`ser_lightning.transforms.opensmile_features`),
            or ``name`` an utterance feature extractor
            (:func:`~ser_lightning.data.utterance_features.utterance_features`; ``level``
            must be ``functionals``), whose ``cache_name`` and ``version`` key the cache.
        cache_dir: the feature cache folder (``None``: compute, store nothing).
        trim: the ``data.trim`` the waves were decoded with (part of the key).
        workers: extraction threads (openSMILE runs outside the GIL); default the CPUs.
        wave: ``i -> [time]`` wave of file ``i`` instead of ``audio.wave``.

    Returns:
        :class:`ExpertFeatures` in the order of ``paths``.

    Raises:
        ConfigError: unknown set/level or ``opensmile`` missing.
        ValueError: ``paths`` and ``audio`` differ in length.
    """
    if isinstance(name, str):
        check_feature_set(name, level)
        version, expected, compute_one = opensmile_version(), n_features(name, level), functools.partial(extract, name=name, level=level)
    else:  # an utterance feature extractor (an encoder embedding)
        if level != "functionals":
            raise ValueError(f"an utterance feature extractor gives functionals, not {level}")
        extractor, name = name, name.cache_name
        version, expected, compute_one, workers = extractor.version, extractor.n_features, extractor, workers or extractor.workers
    if len(paths) != len(audio):
        raise ValueError(f"{len(paths)} paths but {len(audio)} decoded waves")
    start = time.perf_counter()
    root = None if cache_dir is None else Path(cache_dir)
    wave = wave or audio.wave
    errors = {p: audio.errors[p] for p in paths if p in audio.errors}
    results: list[np.ndarray | None] = [None] * len(paths)
    todo = []
    for i, p in enumerate(paths):
        if p in errors:
            continue
        file = None if root is None else _entry(root, name, level, feature_key(p, audio.sample_rate, name, level, trim, version))
        cached = _read_entry(file, expected, level) if file is not None and file.is_file() else None
        if cached is not None:
            results[i] = cached
        else:
            todo.append((i, file))

    def compute(item):
        i, file = item
        try:
            values = compute_one(np.asarray(wave(i)), audio.sample_rate)
        except AudioDecodeError as exc:
            return i, None, f"{paths[i]}: {exc}"
        if file is not None:
            _write_entry(file, values)
        return i, values, None

    n_cached = len(paths) - len(errors) - len(todo)
    if todo:
        log.info("%s %s: computing %d of %d files (%d cached)", name, level, len(todo), len(paths), len(paths) - len(todo))
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            for n_done, (i, values, err) in enumerate(pool.map(compute, todo), start=1):
                if err is not None:
                    errors[paths[i]] = err
                results[i] = values
                if n_done % max(1, len(todo) // 10) == 0:  # a long extraction (an encoder over a corpus) shows progress
                    log.info("%s %s: %d of %d computed (%.0f s)", name, level, n_done, len(todo), time.perf_counter() - start)
    if errors:
        log.warning("%s %s: %d of %d files without features:\n  %s", name, level, len(errors), len(paths),
                    "\n  ".join(list(errors.values())[:10]))
    if level == "functionals":
        values = np.full((len(paths), expected), np.nan, dtype=np.float32)
        for i, r in enumerate(results):
            if r is not None:
                values[i] = r
    else:
        values = results
    computed = [i for i, _ in todo]
    return ExpertFeatures(values, errors, hits=n_cached, computed=sum(results[i] is not None for i in computed),
                          seconds=time.perf_counter() - start, audio_seconds=sum(audio.seconds(i) for i in computed))
