"""Audio decoding: any libsndfile format -> mono float32 at the model's sample rate.

``soundfile`` (libsndfile) decodes WAV, FLAC, AIFF, OGG, ... and recognises the real
format from the file header, so AIFF data behind a ``.wav`` name decodes correctly.
``soxr`` resamples (about 1 ms per clip for 24,414 Hz -> 16 kHz, where
``torchaudio.functional.resample`` takes about 1.5 s because the two rates share almost
no common factor).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ser_lightning.errors import AudioDecodeError


def to_mono_resampled(audio: np.ndarray, orig_sr: int, sample_rate: int, source: str = "array") -> np.ndarray:
    """Downmix and resample an array of samples.

    Args:
        audio: ``[time]`` or ``[time, channels]`` samples (any float or int dtype).
        orig_sr: sample rate of ``audio`` in Hz.
        sample_rate: target sample rate in Hz.
        source: a name for error messages (file path or "array").

    Returns:
        ``[time']`` float32 mono samples at ``sample_rate``.

    Raises:
        AudioDecodeError: empty audio, NaN/infinite samples, a non-positive rate or
            more than 2 dimensions.
    """
    if orig_sr <= 0:
        raise AudioDecodeError(f"{source}: sample rate must be positive, got {orig_sr}")
    audio = np.asarray(audio)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)  # downmix: average of the channels
    elif audio.ndim != 1:
        raise AudioDecodeError(f"{source}: expected [time] or [time, channels] samples, got shape {audio.shape}")
    if audio.size == 0:
        raise AudioDecodeError(f"{source}: no samples (zero-length audio)")
    audio = audio.astype(np.float32, copy=False)
    if not np.isfinite(audio).all():
        raise AudioDecodeError(f"{source}: contains NaN or infinite samples")
    if orig_sr != sample_rate:
        audio = soxr.resample(audio, orig_sr, sample_rate, quality="HQ")
    return np.ascontiguousarray(audio, dtype=np.float32)


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Decode ``path``, downmix to mono and resample to ``sample_rate``.

    Args:
        path: any file libsndfile reads (format taken from the header, not the name).
        sample_rate: target rate in Hz.

    Returns:
        ``[time]`` float32 samples in [-1, 1] at ``sample_rate``.

    Raises:
        AudioDecodeError: missing or unreadable file, not audio, truncated beyond
            repair, data corrupted after the header (libsndfile's reason is quoted), no
            samples, or NaN/infinite samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(f"{path}: no such file")
    try:
        audio, orig_sr = sf.read(str(path), dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as exc:
        # also damage after a valid header: libsndfile fails while decoding the data
        # ("flac decoder lost sync"), not when opening the file
        raise AudioDecodeError(f"{path}: cannot decode as audio ({exc})") from exc
    return to_mono_resampled(audio, orig_sr, sample_rate, str(path))


def fit_length(wave: np.ndarray, length: int, offset: int | None = None) -> np.ndarray:
    """Crop or zero-pad ``wave`` to exactly ``length`` samples.

    Args:
        wave: ``[time]`` samples.
        length: output length in samples.
        offset: for a longer ``wave``, the first sample kept; for a shorter one, the
            number of zeros put before it. ``None`` centres it (deterministic).

    Returns:
        ``[length]`` samples (a view when cropping, a new array when padding).
    """
    n = wave.shape[0]
    if n == length:
        return wave
    room = abs(n - length)
    start = room // 2 if offset is None else int(min(max(offset, 0), room))
    if n > length:
        return wave[start:start + length]
    out = np.zeros(length, dtype=wave.dtype)
    out[start:start + n] = wave
    return out
