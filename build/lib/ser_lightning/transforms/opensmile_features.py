"""The field's standard acoustic parameter sets, computed by openSMILE.

Two sets, each at two levels (``opensmile`` package, audEERING):

- ``egemaps``: eGeMAPS v02, the extended Geneva Minimalistic Acoustic Parameter Set
  (Eyben et al., "The Geneva Minimalistic Acoustic Parameter Set (GeMAPS) for Voice
  Research and Affective Computing", IEEE Trans. Affective Computing 7(2), 2016):
  25 low-level descriptors per 10 ms frame (F0, jitter, shimmer, HNR, formants 1-3,
  loudness, spectral slope, alpha ratio, Hammarberg index, MFCC 1-4, ...) and 88
  utterance functionals of them.
- ``compare``: ComParE 2016, the INTERSPEECH Computational Paralinguistics Challenge
  set (Schuller et al., INTERSPEECH 2016; Eyben, "Real-time speech and music
  classification by large audio feature space extraction", Springer 2016): 65
  low-level descriptors and 6,373 functionals.

Licence: the ``opensmile`` package is distributed under audEERING's research licence
(free for private, research and educational use; **not for commercial use** without a
licence from audEERING). It is therefore an optional extra (``pip install
'ser-lightning[expert]'``), and :func:`licence_notice` is printed once per process
where it is used.

The features are computed on the CPU from the same 16 kHz mono waveform the rest of
the project decodes (:mod:`ser_lightning.data.audio`); their per-file disk cache is
:mod:`ser_lightning.data.feature_cache`.
"""

from __future__ import annotations

import functools
import sys
import threading

import numpy as np

from ser_lightning.errors import AudioDecodeError, ConfigError

#: Our name -> (openSMILE feature set, functionals per utterance, descriptors per frame).
FEATURE_SETS = {"egemaps": ("eGeMAPSv02", 88, 25), "compare": ("ComParE_2016", 6373, 65)}
#: ``functionals``: one vector per utterance; ``lld``: low-level descriptors per 10 ms frame.
LEVELS = ("functionals", "lld")

LICENCE_NOTICE = ("openSMILE (python package 'opensmile', audEERING GmbH) computes the eGeMAPS / ComParE features: "
                  "audEERING research licence, free for research and education, NOT for commercial use "
                  "(https://github.com/audeering/opensmile-python/blob/main/LICENSE).")
_notice_lock = threading.Lock()
_notice_printed = False


def licence_notice() -> None:
    """Print :data:`LICENCE_NOTICE` to stderr, once per process."""
    global _notice_printed
    with _notice_lock:
        if not _notice_printed:
            print(LICENCE_NOTICE, file=sys.stderr, flush=True)
            _notice_printed = True


def check_feature_set(name: str, level: str = "functionals") -> None:
    """Raise :class:`ConfigError` for an unknown set or level, naming the allowed ones."""
    if name not in FEATURE_SETS:
        raise ConfigError(f"openSMILE feature set '{name}' is unknown; allowed: {list(FEATURE_SETS)}")
    if level not in LEVELS:
        raise ConfigError(f"openSMILE feature level '{level}' is unknown; allowed: {list(LEVELS)}")


def n_features(name: str, level: str = "functionals") -> int:
    """88 / 6,373 functionals or 25 / 65 descriptors per frame (``egemaps`` / ``compare``)."""
    check_feature_set(name, level)
    return FEATURE_SETS[name][1 if level == "functionals" else 2]


def opensmile_version() -> str:
    """The installed ``opensmile`` package version (part of the feature cache key).

    Raises:
        ConfigError: the package is not installed (names the extra to install).
    """
    try:
        import opensmile
    except ImportError as exc:
        raise ConfigError("eGeMAPS / ComParE features need the 'opensmile' package (audEERING research licence, "
                          "non-commercial): pip install 'ser-lightning[expert]'") from exc
    return str(opensmile.__version__)


_local = threading.local()  # one Smile per thread and (set, level): its native extractor keeps a state


def _smile(name: str, level: str):
    opensmile_version()
    import opensmile

    key = (name, level)
    cache = getattr(_local, "smiles", None)
    if cache is None:
        cache = _local.smiles = {}
    if key not in cache:
        licence_notice()
        cache[key] = opensmile.Smile(
            feature_set=getattr(opensmile.FeatureSet, FEATURE_SETS[name][0]),
            feature_level=opensmile.FeatureLevel.Functionals if level == "functionals" else opensmile.FeatureLevel.LowLevelDescriptors)
    return cache[key]


@functools.cache
def feature_names(name: str, level: str = "functionals") -> tuple[str, ...]:
    """openSMILE's names of the features, in column order (e.g. ``F0semitoneFrom27.5Hz_sma3nz_amean``)."""
    check_feature_set(name, level)
    return tuple(_smile(name, level).feature_names)


def extract(wave: np.ndarray, sample_rate: int, name: str, level: str = "functionals") -> np.ndarray:
    """openSMILE features of one mono waveform.

    Args:
        wave: ``[time]`` float samples in [-1, 1] (mono).
        sample_rate: Hz (the project decodes to 16 kHz).
        name: a key of :data:`FEATURE_SETS`.
        level: ``functionals`` or ``lld``.

    Returns:
        ``functionals``: ``[n_features]`` float32 (88 or 6,373);
        ``lld``: ``[n_descriptors, frames]`` float32 (25 or 65 per 10 ms frame; the
        frames are those of openSMILE's 20 ms (eGeMAPS) or 60 ms (ComParE pitch) windows).

    Raises:
        ConfigError: unknown set or level, or ``opensmile`` not installed.
        AudioDecodeError: an empty or non-1-D wave, non-finite samples, or a signal
            openSMILE gives no or non-finite features for (e.g. shorter than its window).
    """
    check_feature_set(name, level)
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1 or wave.shape[0] == 0:
        raise AudioDecodeError(f"openSMILE needs a non-empty mono wave, got shape {tuple(wave.shape)}")
    if not np.all(np.isfinite(wave)):
        raise AudioDecodeError("the wave holds NaN or infinite samples")
    try:
        frame = _smile(name, level).process_signal(wave, sample_rate)
    except (RuntimeError, ValueError) as exc:  # openSMILE's native errors surface as RuntimeError
        raise AudioDecodeError(f"openSMILE could not process the signal ({type(exc).__name__}: {exc})") from exc
    values = frame.to_numpy(dtype=np.float32)
    if values.size == 0:
        raise AudioDecodeError(f"openSMILE gave no {level} for a {wave.shape[0] / sample_rate:.3f} s signal (too short?)")
    if not np.all(np.isfinite(values)):
        raise AudioDecodeError(f"openSMILE gave non-finite {name} {level} for this signal")
    return values[0] if level == "functionals" else np.ascontiguousarray(values.T)
