"""Windows of openSMILE low-level descriptors: the input of a neural model trained with
``features=egemaps`` or ``features=compare``.

openSMILE's descriptors (eGeMAPS v02: 25, ComParE 2016: 65 per frame; Eyben et al., IEEE
Trans. Affective Computing 7(2), 2016; Schuller et al., INTERSPEECH 2016) are computed
over a **whole file** once (F0, jitter and shimmer need context, and the per-file cache,
:mod:`ser_lightning.data.feature_cache`, stores them), at 100 frames per second: frame
``k`` starts at sample ``k * hop`` (``hop`` = 10 ms = 160 samples at 16 kHz; openSMILE
frames are not centred). A window of the waveform starting at sample ``s`` is then the
descriptor frames ``s // hop ... s // hop + clip_frames - 1`` (``clip_frames = clip_samples
// hop``, 300 for 3 s). Frames past the file's last descriptor frame (openSMILE stops one
analysis window before the end: about 4 frames for a window ending at the file's end) and
the padding around a file shorter than one window are zeros. Training
(:class:`~ser_lightning.data.lld_dataset.LLDClipDataset`) and prediction
(:class:`~ser_lightning.inference.predictor.Predictor`) both cut windows with
:func:`lld_window`, so a checkpoint scores a file the same way wherever it is scored.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np

from ser_lightning.transforms.opensmile_features import extract


def frame_of(start_sample: int, hop: int) -> int:
    """The descriptor frame of a window starting at ``start_sample`` (may be negative:
    the zeros before a centred short file), rounded towards zero."""
    return start_sample // hop if start_sample >= 0 else -((-start_sample) // hop)


def lld_window(lld: np.ndarray, start_frame: int, clip_frames: int, out: np.ndarray | None = None) -> np.ndarray:
    """Frames ``start_frame ... start_frame + clip_frames - 1`` of ``lld``, zeros where
    there is no frame (before 0, after the last).

    Args:
        lld: ``[n_descriptors, frames]`` float32 descriptors of a whole file.
        start_frame: first frame (negative: that many zero frames first).
        clip_frames: window length in frames.
        out: ``[n_descriptors, clip_frames]`` array to fill (else a new one).

    Returns:
        ``[n_descriptors, clip_frames]`` float32.
    """
    if out is None:
        out = np.zeros((lld.shape[0], clip_frames), np.float32)
    else:
        out[:] = 0.0
    lo, hi = max(start_frame, 0), min(start_frame + clip_frames, lld.shape[1])
    if hi > lo:
        out[:, lo - start_frame:hi - start_frame] = lld[:, lo:hi]
    return out


def centred_start(n_frames: int, clip_frames: int) -> int:
    """Start frame of the centred window of a file of ``n_frames`` descriptor frames
    (negative for a file shorter than the window: centred in zeros), as evaluation clips."""
    return (n_frames - clip_frames) // 2 if n_frames >= clip_frames else -((clip_frames - n_frames) // 2)


_MEMO: OrderedDict[tuple[str, int, str], np.ndarray] = OrderedDict()  # shared by every DescriptorMemo of the process
_MEMO_LOCK = threading.Lock()


class DescriptorMemo:
    """Descriptors of waves, computed by openSMILE and remembered per wave content.

    The scoring path meets the same file several times (once per test-time statistics
    mode, once more for a speaker's statistics, once per ensemble member and once more
    for the ensemble); openSMILE costs about 36 ms of CPU per second of audio, so the last
    ``max_items`` results are kept for the whole process (every predictor shares them),
    keyed by the set, the sample rate and the SHA-1 of the samples: a changed wave is a
    new key, never a stale answer.

    Args:
        name: ``egemaps`` or ``compare``.
        sample_rate: Hz of the waves.
        max_items: how many files' descriptors the process keeps (about 40 KB per 4-s
            eGeMAPS file).
    """

    def __init__(self, name: str, sample_rate: int, max_items: int = 4096):
        self.name, self.sample_rate, self.max_items = name, sample_rate, max_items

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        """``[time]`` float32 wave -> ``[n_descriptors, frames]`` float32 (read-only: shared).

        Raises:
            AudioDecodeError: openSMILE cannot process the wave (too short, silent, NaN).
            ConfigError: ``opensmile`` is not installed.
        """
        wave = np.ascontiguousarray(wave, dtype=np.float32)
        key = (self.name, self.sample_rate, hashlib.sha1(wave.tobytes()).hexdigest())
        with _MEMO_LOCK:
            hit = _MEMO.get(key)
            if hit is not None:
                _MEMO.move_to_end(key)
                return hit
        values = extract(wave, self.sample_rate, self.name, "lld")
        values.flags.writeable = False
        with _MEMO_LOCK:
            _MEMO[key] = values
            while len(_MEMO) > self.max_items:
                _MEMO.popitem(last=False)
        return values
